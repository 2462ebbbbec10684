//! The text fallback: items whose words contain the query's words, for items vector search
//! cannot see yet (not embedded, stale, or embedded by another embedder) and for every item
//! when the query could not be embedded.
//!
//! `LIKE '%word%'` per word rather than a FULLTEXT index: InnoDB's FULLTEXT parser splits on
//! spaces and indexes no substrings, so `텐트` would not find `캠핑텐트` and Korean particles
//! (`텐트를`) defeat whole-word matching, while MariaDB has no ngram parser. A substring scan
//! costs a pass over the rows it considers; with [`Scope::NotEmbedded`] those are the few
//! items waiting for the worker (found through `ix_rental_items_embed`); with [`Scope::All`]
//! every item.

use sqlx::{MySqlPool, Row};

use super::{MatchedBy, SearchFilter, SearchHit};
use crate::rental::{COLUMNS, Rental};

/// Words of the query used, at most; more only cost time.
const MAX_WORDS: usize = 8;

#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// Items without a current embedding (WAIT or PENDING).
    NotEmbedded,
    /// Every item.
    All,
}

/// `word` as a LIKE pattern that matches it literally anywhere.
fn contains_pattern(word: &str) -> String {
    let mut escaped = String::with_capacity(word.len() + 2);
    escaped.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// The distinct words of `q` (lower-cased; the collation ignores case anyway).
fn words(q: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in q.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_lowercase();
        if !out.contains(&word) {
            out.push(word);
        }
        if out.len() == MAX_WORDS {
            break;
        }
    }
    out
}

/// Up to `limit` items containing any of the query's words, the most words first.
#[tracing::instrument(skip_all, fields(limit = limit))]
pub async fn search(
    db: &MySqlPool,
    scope: Scope,
    q: &str,
    filter: &SearchFilter,
    limit: u32,
) -> sqlx::Result<Vec<SearchHit>> {
    let words = words(q);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let matched = vec!["(i.title LIKE ? OR i.description LIKE ?)"; words.len()].join(" + ");
    let scope_sql = match scope {
        // DONE is set in the transaction that stores the vector of the current version (see
        // `rental::embedding`), and vectors of another embedder are requeued when a worker
        // starts, so "not DONE" is "no current vector": an index range, not a scan.
        Scope::NotEmbedded => " AND i.embed_status IN ('WAIT', 'PENDING')",
        Scope::All => "",
    };
    let sql = format!(
        "SELECT {COLUMNS}, ({matched}) AS matched FROM rental_items i WHERE 1 = 1{scope_sql}{filters} \
         HAVING matched > 0 ORDER BY matched DESC, i.id DESC LIMIT ?",
        filters = filter.sql()
    );
    let patterns: Vec<String> = words.iter().map(|w| contains_pattern(w)).collect();
    let mut query = sqlx::query(&sql);
    for p in &patterns {
        query = query.bind(p).bind(p);
    }
    let rows = filter.bind(query).bind(limit).fetch_all(db).await?;
    let n = words.len() as f64;
    rows.iter()
        .map(|row| {
            // A sum of booleans: MariaDB answers it as a DECIMAL-free integer.
            let matched: i64 = row.try_get("matched")?;
            Ok(SearchHit { item: Rental::from_row(row)?, score: matched as f64 / n, matched_by: MatchedBy::Text })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what a `fmt` subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// `fields(limit)` alone declares an empty field and hides the argument: a span must
    /// carry the value.
    #[tokio::test]
    async fn the_search_span_records_its_limit() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let db = sqlx::mysql::MySqlPoolOptions::new().connect_lazy("mysql://nobody@127.0.0.1:1/none").unwrap();

        // No words: answered without a query, but the span is opened all the same.
        let hits = search(&db, Scope::NotEmbedded, "", &SearchFilter::default(), 7).await.unwrap();

        assert!(hits.is_empty());
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("search{limit=7}"), "{text}");
    }

    #[test]
    fn patterns_match_wildcards_literally() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn words_are_split_lowered_deduplicated_and_capped() {
        assert_eq!(words("Tent, tent! 캠핑 텐트"), vec!["tent", "캠핑", "텐트"]);
        assert!(words("?!").is_empty());
        assert_eq!(words("a b c d e f g h i j").len(), MAX_WORDS);
    }
}
