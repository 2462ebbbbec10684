//! argon2id password hashes (PHC strings), computed off the async threads, a bounded number
//! at a time.
//!
//! Each hash holds argon2's memory (19 MiB by default) for tens of milliseconds of CPU. With
//! no bound, 64 concurrent wrong-password logins took a process from 165 MB to 1.37 GB (kept
//! afterwards by the allocator), and every other request waited behind them. Here at most
//! `concurrency` hashes run at once, at most `queue` more wait for a slot, and anything
//! beyond is refused at once with [`HashError::Busy`] (503 with `Retry-After`), so memory is
//! bounded by `concurrency` × argon2's memory whatever the load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot is taken and the queue is full.
    #[error("password hashing is at capacity")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ApiError::Overloaded {
                code: "busy",
                message: "too many sign-ups and logins at once on this instance: retry in a second".into(),
                retry_after_s: 1,
            },
            HashError::Failed(e) => ApiError::Internal(e),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    slots: Arc<Semaphore>,
    /// Hashes running or waiting now.
    in_line: Arc<AtomicUsize>,
    /// Running + waiting beyond which a request is refused.
    capacity: usize,
    /// A hash of nothing anyone knows, with the current parameters: a login for an address
    /// with no account is checked against it, so that it costs what a real one does and the
    /// answer's timing does not tell which addresses have accounts.
    decoy: Arc<String>,
}

/// Releases a place in line when dropped.
struct InLine(Arc<AtomicUsize>);

impl Drop for InLine {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    /// `concurrency` hashes at once (at least 1), `queue` more waiting.
    pub fn new(memory_kib: u32, iterations: u32, concurrency: usize, queue: usize) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters m={memory_kib} t={iterations}: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = SaltString::generate(&mut OsRng);
        let decoy = argon2::PasswordHasher::hash_password(&argon2, rand::random::<[u8; 32]>().as_slice(), &salt)
            .map_err(|e| anyhow::anyhow!("hashing the decoy password: {e}"))?
            .to_string();
        let concurrency = concurrency.max(1);
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(concurrency)),
            in_line: Arc::default(),
            capacity: concurrency + queue,
            decoy: Arc::new(decoy),
        })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Runs `work` on the blocking pool once a slot is free; `Busy` when the line is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, HashError> {
        if self.in_line.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.in_line.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Busy);
        }
        let _place = InLine(self.in_line.clone());
        let _slot = self.slots.acquire().await.map_err(|_| HashError::Busy)?;
        Ok(tokio::task::spawn_blocking(work).await.map_err(anyhow::Error::from)??)
    }

    /// Hashes `password` with the current parameters and a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let argon2 = self.argon2();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2::PasswordHasher::hash_password(&argon2, password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
        })
        .await
    }

    /// True when `password` matches `phc`; with `None` (no such account) it checks against the
    /// decoy and is always false. The parameters stored in `phc` are used, so hashes made with
    /// older settings still verify.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, HashError> {
        let (phc, real) = match phc {
            Some(phc) => (phc, true),
            None => (self.decoy.as_str().to_string(), false),
        };
        self.run(move || {
            let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
            Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && real)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_slots_and_the_queue_a_hash_is_refused_at_once() {
        let hasher = PasswordHasher::new(8 * 1024, 3, 1, 2).unwrap();
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.hash("correct horse".into()).await })
            })
            .collect();
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => {}
                Err(HashError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(busy >= 1, "12 at once through 1 slot and a queue of 2: some must be refused");
        assert_eq!(hasher.in_line.load(Ordering::Acquire), 0, "every place in line was given back");
        // Once the line is empty, hashing works again.
        let phc = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hasher.verify("correct horse".into(), Some(phc.clone())).await.unwrap());
        assert!(!hasher.verify("wrong".into(), Some(phc)).await.unwrap());
    }

    #[tokio::test]
    async fn an_address_without_an_account_is_checked_against_the_decoy_and_never_matches() {
        let hasher = PasswordHasher::new(1024, 1, 2, 8).unwrap();
        assert!(!hasher.verify(String::new(), None).await.unwrap());
        assert!(!hasher.verify("correct horse".into(), None).await.unwrap());
    }
}
