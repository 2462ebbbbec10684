//! Notifications: who is told what, stored once per (recipient, cause), delivered to the
//! recipient's SSE stream on whichever instance holds it.
//!
//! A diary shared with friends notifies each friend; a comment notifies the diary's owner.
//! How a notification travels between instances is a [`bus::Delivery`] strategy, chosen per
//! instance by `SERVER_NOTIFY_DELIVERY`.

pub mod alert;
pub mod bus;
pub mod hub;
pub mod metrics;
pub mod store;
pub mod stream;

use serde::{Deserialize, Serialize};

/// What caused a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = NotificationKind)]
pub enum Kind {
    /// A friend wrote a diary shared with friends; `cause_id` is the diary.
    Diary,
    /// Someone commented on the recipient's diary; `cause_id` is the comment.
    Comment,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Diary => "diary",
            Kind::Comment => "comment",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "diary" => Some(Kind::Diary),
            "comment" => Some(Kind::Comment),
            _ => None,
        }
    }
}

/// A notification to be stored (no id yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNotification {
    pub recipient_id: u64,
    pub kind: Kind,
    pub cause_id: u64,
    pub actor_id: u64,
}

/// A stored notification: what the SSE stream and the list endpoint serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notification {
    pub id: u64,
    pub recipient_id: u64,
    /// The recipient's own sequence: 1, 2, 3, ... in the order the notifications were
    /// committed. The SSE stream's `id:`, so the `Last-Event-ID` to resume from.
    // 0 in a message from an instance that predates it: such a copy is skipped by streams,
    // which read the row instead.
    #[serde(default)]
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub cause_id: u64,
    pub actor_id: u64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<chrono::DateTime<chrono::Utc>>,
}

use std::sync::Arc;

use sqlx::MySqlConnection;

use bus::Delivery;

/// What the rest of the server calls: who to notify for an event, and hand-off to the
/// instance's delivery strategy at the right moments of the cause's transaction.
#[derive(Clone)]
pub struct Notifier {
    delivery: Arc<dyn Delivery>,
    metrics: Arc<metrics::NotifyMetrics>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("strategy", &self.delivery.strategy()).finish()
    }
}

impl Notifier {
    pub fn new(delivery: Arc<dyn Delivery>, metrics: Arc<metrics::NotifyMetrics>) -> Self {
        Self { delivery, metrics }
    }

    pub fn delivery(&self) -> &Arc<dyn Delivery> {
        &self.delivery
    }

    /// The friends of `author`, read inside the diary's transaction, for a shared diary.
    pub async fn for_diary(tx: &mut MySqlConnection, author: u64, diary_id: u64) -> sqlx::Result<Vec<NewNotification>> {
        let friends: Vec<u64> =
            sqlx::query_scalar("SELECT friend_id FROM friendships WHERE user_id = ? ORDER BY friend_id")
                .bind(author)
                .fetch_all(&mut *tx)
                .await?;
        Ok(friends
            .into_iter()
            .map(|recipient_id| NewNotification {
                recipient_id,
                kind: Kind::Diary,
                cause_id: diary_id,
                actor_id: author,
            })
            .collect())
    }

    /// The diary's owner, unless they commented on their own diary.
    pub fn for_comment(diary_owner: u64, commenter: u64, comment_id: u64) -> Vec<NewNotification> {
        if diary_owner == commenter {
            return Vec::new();
        }
        vec![NewNotification {
            recipient_id: diary_owner,
            kind: Kind::Comment,
            cause_id: comment_id,
            actor_id: commenter,
        }]
    }

    /// Ends the cause's transaction with its notifications: the strategy's part inside it (the
    /// outbox writes its rows there), the commit, and the strategy's part after it. The commit
    /// of a cause that notifies someone is timed (`notify_stage_seconds{stage="cause_commit"}`):
    /// a notification waits for it whatever the strategy.
    pub async fn commit(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::MySql>,
        batch: Vec<NewNotification>,
    ) -> sqlx::Result<()> {
        if batch.is_empty() {
            return tx.commit().await;
        }
        self.delivery.within(&mut tx, &batch).await?;
        let started = std::time::Instant::now();
        tx.commit().await?;
        self.metrics.stage(metrics::Stage::CauseCommit, started.elapsed().as_secs_f64());
        self.after_commit(batch).await;
        Ok(())
    }

    /// After the cause committed. A failure is logged and counted, never turned into a failed
    /// request: the cause is committed, and what this strategy loses here is exactly what
    /// the harness measures.
    async fn after_commit(&self, batch: Vec<NewNotification>) {
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.delivery.after_commit(batch).await {
            tracing::warn!(error = %e, strategy = self.delivery.strategy().as_str(), "notification not delivered");
        }
    }
}
