//! Claiming `rental_items` that need an embedding, and the fenced final write.
//!
//! Three strategies, compared by the claim scenario (`ClaimStrategy`):
//!
//! * `naive`: read WAIT rows without a lock, embed, write DONE. Two workers that read the same
//!   rows both embed and both commit: the baseline the others are measured against. It takes
//!   no claim, so there is no token to fence with, and `embed_fencing` cannot help it.
//! * `version` (the seed's): read candidates without a lock, then one conditional UPDATE
//!   `WAIT -> PENDING, claim_version + 1` that matches a row only at the `claim_version` read;
//!   a worker processes only the rows that now carry its token. Losers match 0 rows and their
//!   claim is recorded as wasted.
//! * `skip-locked`: `SELECT ... FOR UPDATE SKIP LOCKED` in a short transaction that marks the
//!   rows PENDING: concurrent workers take disjoint rows without waiting and without losing.
//!
//! Every claim sets `claimed_until` (the lease): a PENDING row past it is claimable again, so
//! the rows of a worker that died or stalled are not stuck. Because the stalled worker may
//! wake up later, each claim writes a fresh `claim_token`, and the final write (embedding +
//! DONE) commits only if the row still carries that token and the content_version embedded
//! (fencing, as in Kleppmann's "How to do distributed locking"). Without it, a worker whose
//! lease ran out and the worker that took over both commit.
//!
//! All times are the database's (`NOW(6)`), never a process clock: instances' clocks differ.

use std::fmt::Write as _;
use std::time::Duration;

use sqlx::MySqlPool;

/// See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimStrategy {
    Naive,
    Version,
    SkipLocked,
}

impl ClaimStrategy {
    pub const ALL: [ClaimStrategy; 3] = [ClaimStrategy::Naive, ClaimStrategy::Version, ClaimStrategy::SkipLocked];

    pub fn as_str(self) -> &'static str {
        match self {
            ClaimStrategy::Naive => "naive",
            ClaimStrategy::Version => "version",
            ClaimStrategy::SkipLocked => "skip-locked",
        }
    }
}

impl std::str::FromStr for ClaimStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| {
            let valid: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
            format!("`{s}` is not one of {}", valid.join(", "))
        })
    }
}

/// `embed_claims.strategy` of the claims taken by requests that embed their own item.
pub const INLINE: &str = "inline";

/// A row is claimable when it waits, or when its claim's lease ran out.
const CLAIMABLE: &str =
    "(embed_status = 'WAIT' OR (embed_status = 'PENDING' AND (claimed_until IS NULL OR claimed_until < NOW(6))))";

/// One item as claimed: what to embed and which version of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedItem {
    pub id: u64,
    pub content_version: u64,
    pub text: String,
}

/// What one claim attempt got.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Fresh per claim: the fencing token the final write must still find on the row.
    pub token: String,
    /// Rows the claim saw as claimable (for `version` and `naive`, before racing for them).
    pub candidates: usize,
    pub items: Vec<ClaimedItem>,
}

/// How an item's final write ended (`embed_attempts.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    /// The row no longer carries this claim's token: another claim took it over.
    Fenced,
    /// The content changed (or the item was deleted) after the claim read it.
    Stale,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Committed => "committed",
            Outcome::Fenced => "fenced",
            Outcome::Stale => "stale",
            Outcome::Failed => "failed",
        }
    }
}

/// Claims and commits for one instance; `worker` numbers tell its workers apart in the logs.
#[derive(Debug, Clone)]
pub struct Claimer {
    pub db: MySqlPool,
    pub strategy: ClaimStrategy,
    pub lease: Duration,
    pub fencing: bool,
    pub instance_id: String,
}

fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// id, content_version, title, category, description.
type ItemRow = (u64, u64, String, String, String);

fn into_item((id, content_version, title, category, description): ItemRow) -> ClaimedItem {
    ClaimedItem { id, content_version, text: crate::rental::embedding::embedding_text(&title, &category, &description) }
}

impl Claimer {
    /// Claims up to `limit` items and records the attempt in `embed_claims`.
    #[tracing::instrument(skip_all, fields(strategy = self.strategy.as_str(), worker = worker))]
    pub async fn claim(&self, worker: u32, limit: u32) -> sqlx::Result<Claim> {
        let token = new_token();
        let (candidates, items) = match self.strategy {
            ClaimStrategy::Naive => self.claim_naive(limit).await?,
            ClaimStrategy::Version => self.claim_version(&token, limit).await?,
            ClaimStrategy::SkipLocked => self.claim_skip_locked(&token, limit).await?,
        };
        self.record_claim(worker, self.strategy.as_str(), &token, candidates, items.len()).await?;
        Ok(Claim { token, candidates, items })
    }

    /// A claim for an item about to be written by a request that embeds it itself (the
    /// `inline` embed mode): see [`crate::rental::embedding::Hold`].
    pub fn hold(&self) -> crate::rental::embedding::Hold {
        crate::rental::embedding::Hold {
            token: new_token(),
            instance_id: self.instance_id.clone(),
            lease_s: self.lease.as_secs(),
        }
    }

    /// The claim of item `id` written under `token` by [`Claimer::hold`]'s caller, recorded
    /// like every claim (strategy `inline`); empty if the row no longer carries it.
    pub async fn claim_held(&self, worker: u32, id: u64, token: &str) -> sqlx::Result<Claim> {
        let rows: Vec<ItemRow> = sqlx::query_as(
            "SELECT id, content_version, title, category, description FROM rental_items \
             WHERE id = ? AND claim_token = ? AND embed_status = 'PENDING'",
        )
        .bind(id)
        .bind(token)
        .fetch_all(&self.db)
        .await?;
        let items: Vec<ClaimedItem> = rows.into_iter().map(into_item).collect();
        self.record_claim(worker, INLINE, token, 1, items.len()).await?;
        Ok(Claim { token: token.to_string(), candidates: 1, items })
    }

    /// Claims item `id` alone if it is claimable (the `inline` embed mode after an edit set it
    /// WAIT): empty when a worker holds it or it is DONE.
    pub async fn claim_item(&self, worker: u32, id: u64) -> sqlx::Result<Claim> {
        let token = new_token();
        let claimed = sqlx::query(&format!(
            "UPDATE rental_items SET embed_status = 'PENDING', claim_version = claim_version + 1, \
             claim_token = ?, claimed_by = ?, claimed_until = NOW(6) + INTERVAL ? SECOND WHERE id = ? AND {CLAIMABLE}"
        ))
        .bind(&token)
        .bind(&self.instance_id)
        .bind(self.lease.as_secs())
        .bind(id)
        .execute(&self.db)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(Claim { token, candidates: 0, items: Vec::new() });
        }
        self.claim_held(worker, id, &token).await
    }

    async fn record_claim(
        &self,
        worker: u32,
        strategy: &str,
        token: &str,
        candidates: usize,
        claimed: usize,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO embed_claims (instance_id, worker, strategy, claim_token, candidates, claimed) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&self.instance_id)
        .bind(worker)
        .bind(strategy)
        .bind(token)
        .bind(candidates as u64)
        .bind(claimed as u64)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn claim_naive(&self, limit: u32) -> sqlx::Result<(usize, Vec<ClaimedItem>)> {
        let rows: Vec<ItemRow> = sqlx::query_as(&format!(
            "SELECT id, content_version, title, category, description FROM rental_items WHERE {CLAIMABLE} ORDER BY id LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        Ok((rows.len(), rows.into_iter().map(into_item).collect()))
    }

    async fn claim_version(&self, token: &str, limit: u32) -> sqlx::Result<(usize, Vec<ClaimedItem>)> {
        let seen: Vec<(u64, u64)> = sqlx::query_as(&format!(
            "SELECT id, claim_version FROM rental_items WHERE {CLAIMABLE} ORDER BY id LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        if seen.is_empty() {
            return Ok((0, Vec::new()));
        }
        // One statement for the batch: a row matches only at the claim_version this worker
        // read, so of two workers that read the same version exactly one moves it (InnoDB
        // re-reads the latest committed row under the row lock before applying the WHERE).
        let versions = vec!["(id = ? AND claim_version = ?)"; seen.len()].join(" OR ");
        let sql = format!(
            "UPDATE rental_items SET embed_status = 'PENDING', claim_version = claim_version + 1, \
             claim_token = ?, claimed_by = ?, claimed_until = NOW(6) + INTERVAL ? SECOND \
             WHERE {CLAIMABLE} AND ({versions})"
        );
        let mut q = sqlx::query(&sql).bind(token).bind(&self.instance_id).bind(self.lease.as_secs());
        for (id, version) in &seen {
            q = q.bind(id).bind(version);
        }
        q.execute(&self.db).await?;
        // Process only the rows still PENDING at the version this claim set, under its token.
        let sql = format!(
            "SELECT id, claim_version, content_version, title, category, description FROM rental_items \
             WHERE id IN ({}) AND embed_status = 'PENDING' AND claim_token = ?",
            placeholders(seen.len())
        );
        let mut q = sqlx::query_as::<_, (u64, u64, u64, String, String, String)>(&sql);
        for (id, _) in &seen {
            q = q.bind(id);
        }
        let won = q.bind(token).fetch_all(&self.db).await?;
        let items = won
            .into_iter()
            .filter(|(id, version, ..)| seen.iter().any(|(i, v)| i == id && v + 1 == *version))
            .map(|(id, _, content_version, title, category, description)| {
                into_item((id, content_version, title, category, description))
            })
            .collect();
        Ok((seen.len(), items))
    }

    async fn claim_skip_locked(&self, token: &str, limit: u32) -> sqlx::Result<(usize, Vec<ClaimedItem>)> {
        // Short transaction: the locks live only until the rows say PENDING; the embedding
        // happens outside it, protected by the lease and the token.
        let mut tx = self.db.begin().await?;
        let rows: Vec<ItemRow> = sqlx::query_as(&format!(
            "SELECT id, content_version, title, category, description FROM rental_items WHERE {CLAIMABLE} \
             ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED"
        ))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if !rows.is_empty() {
            let sql = format!(
                "UPDATE rental_items SET embed_status = 'PENDING', claim_version = claim_version + 1, \
                 claim_token = ?, claimed_by = ?, claimed_until = NOW(6) + INTERVAL ? SECOND WHERE id IN ({})",
                placeholders(rows.len())
            );
            let mut q = sqlx::query(&sql).bind(token).bind(&self.instance_id).bind(self.lease.as_secs());
            for row in &rows {
                q = q.bind(row.0);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok((rows.len(), rows.into_iter().map(into_item).collect()))
    }

    /// The final write of one item; see [`Claimer::commit_batch`].
    pub async fn commit(
        &self,
        worker: u32,
        token: &str,
        item: &ClaimedItem,
        embedder: &str,
        vector: &[f32],
    ) -> sqlx::Result<Outcome> {
        let outcomes = self.commit_batch(worker, token, &[(item, vector)], embedder).await?;
        Ok(outcomes[0])
    }

    /// The final write of a claim's items: their embeddings and DONE, in one transaction, for
    /// the items whose row still holds this claim (when fencing is on) at the content_version
    /// embedded. Records every attempt, and the audit rows of the committed items in the same
    /// transaction as their embeddings. Returns one outcome per item, in order.
    ///
    /// One transaction per claim, not per item: per item, each post cost two commits (two log
    /// flushes) and five round trips. scenarios/claim-throughput.toml (3 instances x 4
    /// workers, batches of 64, hashing embedder) went from 336 to 889 posts/s for `version`
    /// and from 303 to 797 for `skip-locked` with this change (reports/README.md).
    #[tracing::instrument(skip_all, fields(items = items.len(), worker = worker))]
    pub async fn commit_batch(
        &self,
        worker: u32,
        token: &str,
        items: &[(&ClaimedItem, &[f32])],
        embedder: &str,
    ) -> sqlx::Result<Vec<Outcome>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let fenced = self.fencing && self.strategy != ClaimStrategy::Naive;
        let mut tx = self.db.begin().await?;
        // Lock the rows (in id order, as every other writer does) and keep them locked to
        // COMMIT, so a take-over cannot slip in between this check and the embedding write.
        let guard = if fenced { " AND claim_token = ? AND embed_status = 'PENDING'" } else { "" };
        let mut ids: Vec<u64> = items.iter().map(|(item, _)| item.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let sql = format!(
            "SELECT id, content_version FROM rental_items WHERE id IN ({}){guard} ORDER BY id FOR UPDATE",
            placeholders(ids.len())
        );
        let mut q = sqlx::query_as::<_, (u64, u64)>(&sql);
        for id in &ids {
            q = q.bind(id);
        }
        if fenced {
            q = q.bind(token);
        }
        let held: std::collections::HashMap<u64, u64> = q.fetch_all(&mut *tx).await?.into_iter().collect();
        let wins: Vec<bool> = items.iter().map(|(item, _)| held.get(&item.id) == Some(&item.content_version)).collect();
        let winners: Vec<&(&ClaimedItem, &[f32])> =
            items.iter().zip(&wins).filter(|(_, w)| **w).map(|(i, _)| i).collect();
        if winners.is_empty() {
            tx.rollback().await?;
        } else {
            let sql = format!(
                "UPDATE rental_items SET embed_status = 'DONE', claim_token = ?, claimed_by = ?, claimed_until = NULL \
                 WHERE id IN ({})",
                placeholders(winners.len())
            );
            let mut q = sqlx::query(&sql).bind(token).bind(&self.instance_id);
            for (item, _) in &winners {
                q = q.bind(item.id);
            }
            q.execute(&mut *tx).await?;
            let mut embeddings = sqlx::QueryBuilder::new(
                "INSERT INTO rental_embeddings (item_id, content_version, embedder, embedding) ",
            );
            embeddings.push_values(&winners, |mut row, (item, vector)| {
                row.push_bind(item.id)
                    .push_bind(item.content_version)
                    .push_bind(embedder)
                    .push_bind(crate::embed::to_vector_bytes(vector));
            });
            embeddings.push(
                " ON DUPLICATE KEY UPDATE content_version = VALUES(content_version), embedder = VALUES(embedder), \
                 embedding = VALUES(embedding), created_at = CURRENT_TIMESTAMP(6)",
            );
            embeddings.build().execute(&mut *tx).await?;
            let mut audit = sqlx::QueryBuilder::new(
                "INSERT INTO embed_audit (item_id, content_version, claim_token, instance_id) ",
            );
            audit.push_values(&winners, |mut row, (item, _)| {
                row.push_bind(item.id).push_bind(item.content_version).push_bind(token).push_bind(&self.instance_id);
            });
            audit.build().execute(&mut *tx).await?;
            tx.commit().await?;
        }
        // The losers: another claim holds the row (fenced), or the content moved on (stale).
        let lost: Vec<u64> = items.iter().zip(&wins).filter(|(_, w)| !**w).map(|((item, _), _)| item.id).collect();
        let current: std::collections::HashMap<u64, u64> = if lost.is_empty() {
            Default::default()
        } else {
            let sql =
                format!("SELECT id, content_version FROM rental_items WHERE id IN ({})", placeholders(lost.len()));
            let mut q = sqlx::query_as::<_, (u64, u64)>(&sql);
            for id in &lost {
                q = q.bind(id);
            }
            q.fetch_all(&self.db).await?.into_iter().collect()
        };
        let outcomes: Vec<Outcome> = items
            .iter()
            .zip(&wins)
            .map(|((item, _), won)| match (won, current.get(&item.id)) {
                (true, _) => Outcome::Committed,
                (false, Some(v)) if *v == item.content_version => Outcome::Fenced,
                (false, _) => Outcome::Stale,
            })
            .collect();
        let attempts: Vec<(&ClaimedItem, Outcome)> =
            items.iter().map(|(item, _)| *item).zip(outcomes.iter().copied()).collect();
        self.record_all(worker, token, &attempts, None).await?;
        Ok(outcomes)
    }

    /// After a failed embed call: the rows go back to WAIT, but only those this claim still
    /// holds (a row taken over meanwhile belongs to its new claim).
    pub async fn release(&self, worker: u32, claim: &Claim, why: &str) -> sqlx::Result<()> {
        if self.strategy != ClaimStrategy::Naive && !claim.items.is_empty() {
            let sql = format!(
                "UPDATE rental_items SET embed_status = 'WAIT', claim_token = NULL, claimed_by = NULL, \
                 claimed_until = NULL WHERE id IN ({}) AND claim_token = ? AND embed_status = 'PENDING'",
                placeholders(claim.items.len())
            );
            let mut q = sqlx::query(&sql);
            for item in &claim.items {
                q = q.bind(item.id);
            }
            q.bind(&claim.token).execute(&self.db).await?;
        }
        let attempts: Vec<(&ClaimedItem, Outcome)> = claim.items.iter().map(|item| (item, Outcome::Failed)).collect();
        self.record_all(worker, &claim.token, &attempts, Some(why)).await
    }

    /// One `embed_attempts` row per item, in one statement.
    async fn record_all(
        &self,
        worker: u32,
        token: &str,
        attempts: &[(&ClaimedItem, Outcome)],
        detail: Option<&str>,
    ) -> sqlx::Result<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        let detail = detail.map(|d| d.chars().take(500).collect::<String>());
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO embed_attempts (item_id, content_version, claim_token, instance_id, worker, outcome, detail) ",
        );
        q.push_values(attempts, |mut row, (item, outcome)| {
            row.push_bind(item.id)
                .push_bind(item.content_version)
                .push_bind(token)
                .push_bind(&self.instance_id)
                .push_bind(worker)
                .push_bind(outcome.as_str())
                .push_bind(detail.clone());
        });
        q.build().execute(&self.db).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_and_errors_list_the_valid_ones() {
        for s in ClaimStrategy::ALL {
            assert_eq!(s.as_str().parse::<ClaimStrategy>(), Ok(s));
        }
        let err = "locks".parse::<ClaimStrategy>().unwrap_err();
        assert!(err.contains("naive, version, skip-locked"), "{err}");
    }

    #[test]
    fn tokens_are_fresh() {
        assert_ne!(new_token(), new_token());
        assert_eq!(new_token().len(), 32);
    }
}
