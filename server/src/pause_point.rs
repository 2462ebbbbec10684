//! A test-only pause point (`SERVER_PAUSE_POINT`, off unless set): lets a fault-injecting
//! harness freeze this process at one exact moment of its work instead of wherever a SIGSTOP
//! happens to land.
//!
//! With the setting on, SIGUSR1 arms the point; the next time any task of this process reaches
//! it, the point disarms and the process stops itself with SIGSTOP, as a SIGSTOP from outside
//! would stop it, only at the moment chosen. Whoever armed it sees the process stopped (state
//! `T` in `/proc/<pid>/stat`) and resumes it with SIGCONT when it likes. The one point so far:
//!
//! * `embed-before-commit`: an embed worker holds a claim whose vectors it has, and has not
//!   yet written them. Frozen here past its lease, its rows are taken over; when it wakes, its
//!   write must be fenced off (or, without fencing, the post is committed twice). A SIGSTOP at
//!   a random moment lands here only by luck (idle workers, a worker mid-commit holding its
//!   row locks): the claim-contention scenario needs it to land here every run.
//!
//! Without the setting, SIGUSR1 keeps its default action (the process ends), so nothing
//! outside a test can arm a pause.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a process may be paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// See the module documentation.
    EmbedBeforeCommit,
}

impl Point {
    pub const ALL: [Point; 1] = [Point::EmbedBeforeCommit];

    pub fn as_str(self) -> &'static str {
        match self {
            Point::EmbedBeforeCommit => "embed-before-commit",
        }
    }
}

impl std::str::FromStr for Point {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            let valid: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
            format!("`{s}` is not a pause point: the points are {}", valid.join(", "))
        })
    }
}

/// This process's pause point: off, or one point that SIGUSR1 arms.
#[derive(Debug, Clone, Default)]
pub struct PausePoint(Option<Arc<Armable>>);

#[derive(Debug)]
struct Armable {
    point: Point,
    armed: AtomicBool,
}

impl PausePoint {
    /// Off: [`PausePoint::reached`] never pauses.
    pub fn off() -> Self {
        Self(None)
    }

    /// `point`, armed by SIGUSR1 from now on. Needs a tokio runtime.
    pub fn listen(point: Point) -> std::io::Result<Self> {
        let this = Self(Some(Arc::new(Armable { point, armed: AtomicBool::new(false) })));
        let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        let armable = this.0.clone();
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                if let Some(a) = &armable {
                    a.armed.store(true, Ordering::SeqCst);
                    tracing::warn!(point = a.point.as_str(), "pause point armed (SIGUSR1)");
                }
            }
        });
        tracing::warn!(point = point.as_str(), "a test-only pause point is on (SERVER_PAUSE_POINT)");
        Ok(this)
    }

    /// Arms the point as SIGUSR1 does (for tests in this process).
    pub fn arm(&self) {
        if let Some(a) = &self.0 {
            a.armed.store(true, Ordering::SeqCst);
        }
    }

    /// Whether the point is armed and not yet reached.
    pub fn is_armed(&self) -> bool {
        self.0.as_ref().is_some_and(|a| a.armed.load(Ordering::SeqCst))
    }

    /// Called at `point`: when it is this process's point and armed, disarms it and stops the
    /// process (SIGSTOP to itself); returns once the process was resumed. True when it paused.
    pub async fn reached(&self, point: Point) -> bool {
        let Some(a) = &self.0 else { return false };
        if a.point != point || !a.armed.swap(false, Ordering::SeqCst) {
            return false;
        }
        tracing::warn!(point = point.as_str(), "pause point reached: stopping this process (SIGSTOP)");
        let pid = std::process::id().to_string();
        match tokio::process::Command::new("kill").args(["-STOP", &pid]).status().await {
            Ok(status) if status.success() => {
                tracing::warn!(point = point.as_str(), "resumed after the pause point");
                true
            }
            Ok(status) => {
                tracing::error!(point = point.as_str(), %status, "`kill -STOP` failed: not paused");
                false
            }
            Err(e) => {
                tracing::error!(point = point.as_str(), error = %e, "`kill` could not be run: not paused");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_by_name_and_a_wrong_one_lists_them() {
        assert_eq!("embed-before-commit".parse::<Point>(), Ok(Point::EmbedBeforeCommit));
        let err = "before-commit".parse::<Point>().unwrap_err();
        assert!(err.contains("embed-before-commit"), "{err}");
    }

    #[tokio::test]
    async fn an_unarmed_or_other_point_does_not_pause() {
        let off = PausePoint::off();
        off.arm();
        assert!(!off.is_armed());
        assert!(!off.reached(Point::EmbedBeforeCommit).await);
        let on = PausePoint(Some(Arc::new(Armable { point: Point::EmbedBeforeCommit, armed: AtomicBool::new(false) })));
        assert!(!on.reached(Point::EmbedBeforeCommit).await, "not armed");
    }
}
