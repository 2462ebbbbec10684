//! How many embedded items a category and price filter keeps, from this instance's own counts.
//!
//! A broad filter goes through the vector index, which must fetch enough candidates that
//! `limit` of them pass the filter: that needs the share of the items the filter keeps. The
//! optimiser's estimates (`EXPLAIN`'s rows) are index dives that InnoDB doubles for trees over
//! one level deep and caps at half the table: over 100,000 items a category keeping 12,462 was
//! estimated at 23,764 and a price range keeping 30,921 at 71,738, so about two category
//! searches in five came back with too few and went round again (reports/README.md). These
//! counts are exact when taken: one ordered read of `ix_rental_items_search` (category, price),
//! grouped as it is read, about 20 ms for 100,000 items, at most once per [`MAX_AGE`] per
//! instance, in the background once a first count exists. Each category keeps how many items
//! cost at most each price (the cumulative count), exact while it has at most [`MAX_KNOTS`]
//! distinct prices, and thinned to that many points past it, between which prices are taken as
//! evenly spread.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::TryStreamExt as _;
use sqlx::MySqlPool;

use super::SearchFilter;
use crate::rental::Category;

/// How long one count serves before the next is taken (in the background).
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// Most points kept per category once counted: 8 categories x 1,024 x 16 bytes, 128 KiB at
/// most (4 times that while a count is taken in).
pub const MAX_KNOTS: usize = 1_024;

/// How many items of one category cost at most each price: `(price, items priced <= price)`,
/// prices rising.
#[derive(Debug, Clone, Default, PartialEq)]
struct Cdf {
    knots: Vec<(u32, u64)>,
    /// Some prices were dropped: between two points the items are taken as evenly spread.
    thinned: bool,
}

impl Cdf {
    /// Adds the items at `price`, above every price so far. Thins as it goes, so a catalogue
    /// of a million distinct prices never holds more than 4 x [`MAX_KNOTS`] points.
    fn push(&mut self, price: u32, count: u64) {
        let below = self.knots.last().map_or(0, |k| k.1);
        self.knots.push((price, below + count));
        if self.knots.len() >= 4 * MAX_KNOTS {
            self.thin();
        }
    }

    fn total(&self) -> u64 {
        self.knots.last().map_or(0, |k| k.1)
    }

    /// Keeps at most [`MAX_KNOTS`] points: those where the count crosses each of about
    /// `MAX_KNOTS / 2` even steps, each with the point before it (so that the items of one
    /// heavy price stay at that price rather than spread back to the previous kept point), and
    /// the last.
    fn thin(&mut self) {
        if self.knots.len() <= MAX_KNOTS {
            return;
        }
        let step = self.total().div_ceil(MAX_KNOTS as u64 / 2 - 1).max(1);
        let mut keep = vec![false; self.knots.len()];
        let mut next = step;
        for (i, &(_, below)) in self.knots.iter().enumerate() {
            if below >= next {
                keep[i] = true;
                keep[i.saturating_sub(1)] = true;
                next = (below / step + 1) * step;
            }
        }
        if let Some(last) = keep.last_mut() {
            *last = true;
        }
        let mut flags = keep.into_iter();
        self.knots.retain(|_| flags.next().unwrap_or(true));
        self.knots.shrink_to_fit();
        self.thinned = true;
    }

    /// Items priced at most `price`.
    fn at_most(&self, price: u32) -> f64 {
        // The first point priced above `price`.
        let i = self.knots.partition_point(|k| k.0 <= price);
        let below = if i == 0 { 0 } else { self.knots[i - 1].1 };
        if !self.thinned || i == self.knots.len() {
            return below as f64;
        }
        // Between the points around `price` (or from 0 before the first), evenly spread.
        let (from_price, from_count) = if i == 0 { (0, 0) } else { self.knots[i - 1] };
        let (to_price, to_count) = self.knots[i];
        let span = f64::from(to_price - from_price).max(1.0);
        from_count as f64 + (to_count - from_count) as f64 * f64::from(price - from_price) / span
    }

    /// Items priced from `lo` to `hi`, both included.
    fn between(&self, lo: u32, hi: u32) -> f64 {
        if lo > hi {
            return 0.0;
        }
        let under_lo = if lo == 0 { 0.0 } else { self.at_most(lo - 1) };
        (self.at_most(hi) - under_lo).max(0.0)
    }
}

/// The embedded items by category and price, as counted at `taken`.
#[derive(Debug, Clone)]
pub struct Counts {
    taken: Instant,
    by_category: [Cdf; Category::ALL.len()],
}

fn slot(category: Category) -> usize {
    Category::ALL.iter().position(|c| *c == category).expect("every category is in ALL")
}

impl Counts {
    fn empty() -> Counts {
        Counts { taken: Instant::now(), by_category: Default::default() }
    }

    /// Adds the `items` of `category` at `price`: within a category, prices must rise (as the
    /// index gives them). Rows of a category this server does not know are skipped.
    fn add(&mut self, category: &str, price: u32, items: u64) {
        if let Some(category) = Category::parse(category) {
            self.by_category[slot(category)].push(price, items);
        }
    }

    fn finish(mut self) -> Counts {
        self.by_category.iter_mut().for_each(Cdf::thin);
        self.taken = Instant::now();
        self
    }

    /// Counts every embedded item by category and price: one read of the covering index in its
    /// own order (no sort, no temporary table), taken in as the rows arrive.
    pub async fn load(db: &MySqlPool) -> sqlx::Result<Counts> {
        let mut rows = sqlx::query_as::<_, (String, u32, i64)>(
            "SELECT category, price_per_day, COUNT(*) FROM rental_items WHERE embed_status = 'DONE' \
             GROUP BY category, price_per_day ORDER BY category, price_per_day",
        )
        .fetch(db);
        let mut counts = Counts::empty();
        while let Some((category, price, items)) = rows.try_next().await? {
            counts.add(&category, price, items.max(0) as u64);
        }
        Ok(counts.finish())
    }

    /// Every embedded item, when counted.
    pub fn total(&self) -> u64 {
        self.by_category.iter().map(Cdf::total).sum()
    }

    /// The embedded items the category and price filters keep, when counted (availability is
    /// not counted: it only removes items).
    pub fn kept(&self, filter: &SearchFilter) -> u64 {
        let lo = filter.min_price.unwrap_or(0);
        let hi = filter.max_price.unwrap_or(u32::MAX);
        let kept = match filter.category {
            Some(c) => self.by_category[slot(c)].between(lo, hi),
            None => self.by_category.iter().map(|cdf| cdf.between(lo, hi)).sum(),
        };
        kept.round() as u64
    }
}

/// This instance's latest [`Counts`], taken again when older than [`MAX_AGE`].
#[derive(Debug, Default)]
pub struct Selectivity {
    latest: RwLock<Option<Arc<Counts>>>,
    /// When the last count started, so that a failing one is retried after [`RETRY_AFTER`],
    /// not by every search.
    last_attempt: Mutex<Option<Instant>>,
    /// Held by whoever is counting, so one count runs at a time.
    counting: Arc<tokio::sync::Mutex<()>>,
}

/// A count that takes longer is given up (and retried after [`RETRY_AFTER`]): a hung query must
/// not hold the counting lock for ever.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The wait before a count that failed is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(15);

async fn load_bounded(db: &MySqlPool) -> Result<Counts, String> {
    match tokio::time::timeout(LOAD_TIMEOUT, Counts::load(db)).await {
        Ok(Ok(counts)) => Ok(counts),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", LOAD_TIMEOUT.as_secs())),
    }
}

impl Selectivity {
    pub fn new() -> Arc<Selectivity> {
        Arc::new(Selectivity::default())
    }

    fn latest(&self) -> Option<Arc<Counts>> {
        self.latest.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn store(&self, counts: Counts) -> Arc<Counts> {
        let counts = Arc::new(counts);
        *self.latest.write().unwrap_or_else(|e| e.into_inner()) = Some(counts.clone());
        counts
    }

    fn attempt_due(&self) -> bool {
        self.last_attempt.lock().unwrap_or_else(|e| e.into_inner()).is_none_or(|t| t.elapsed() >= RETRY_AFTER)
    }

    fn mark_attempt(&self) {
        *self.last_attempt.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// The latest counts, or none when no count has succeeded yet (searches then plan without
    /// them). The first call counts, others waiting for it; once the counts are older than
    /// [`MAX_AGE`], one call starts a new count in the background and every call goes on with
    /// the old one until it is stored. A count that fails or times out is logged and tried
    /// again after [`RETRY_AFTER`].
    pub async fn counts(self: &Arc<Self>, db: &MySqlPool) -> Option<Arc<Counts>> {
        if let Some(counts) = self.latest() {
            if counts.taken.elapsed() >= MAX_AGE
                && self.attempt_due()
                && let Ok(guard) = self.counting.clone().try_lock_owned()
            {
                self.mark_attempt();
                let (me, db) = (self.clone(), db.clone());
                tokio::spawn(async move {
                    let _guard = guard;
                    // Another count may have been stored since this caller read the old one.
                    if me.latest().is_some_and(|c| c.taken.elapsed() < MAX_AGE) {
                        return;
                    }
                    match load_bounded(&db).await {
                        Ok(counts) => {
                            me.store(counts);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "counting the items for search plans failed; the older counts serve on")
                        }
                    }
                });
            }
            return Some(counts);
        }
        if !self.attempt_due() {
            return None;
        }
        let _guard = self.counting.lock().await;
        if let Some(counts) = self.latest() {
            return Some(counts);
        }
        // The count this call waited for may have failed just now.
        if !self.attempt_due() {
            return None;
        }
        self.mark_attempt();
        match load_bounded(db).await {
            Ok(counts) => Some(self.store(counts)),
            Err(e) => {
                tracing::warn!(error = %e, "counting the items for search plans failed; planning without counts");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Counts {
        /// The counts of `(category, price, items)` rows, as [`Counts::load`] takes them in.
        fn from_sorted(rows: impl IntoIterator<Item = (String, u32, u64)>) -> Counts {
            let mut counts = Counts::empty();
            for (category, price, items) in rows {
                counts.add(&category, price, items);
            }
            counts.finish()
        }
    }

    fn filter(category: Option<Category>, min_price: Option<u32>, max_price: Option<u32>) -> SearchFilter {
        SearchFilter { category, min_price, max_price, available: None }
    }

    /// 100 prices from 0 to 99,000, 10 items each, in two categories; and an unknown category.
    fn rows() -> Vec<(String, u32, u64)> {
        let mut rows = Vec::new();
        for category in ["camping", "tools"] {
            for p in 0..100 {
                rows.push((category.to_string(), p * 1_000, 10));
            }
        }
        rows.push(("spaceships".to_string(), 5_000, 7));
        rows
    }

    #[test]
    fn categories_and_price_ranges_are_counted_exactly_while_prices_are_few() {
        let counts = Counts::from_sorted(rows());
        assert_eq!(counts.total(), 2_000);
        assert_eq!(counts.kept(&filter(None, None, None)), 2_000);
        assert_eq!(counts.kept(&filter(Some(Category::Tools), None, None)), 1_000);
        assert_eq!(counts.kept(&filter(Some(Category::Kids), None, None)), 0);
        assert_eq!(counts.kept(&filter(Some(Category::Tools), Some(10_000), Some(40_000))), 310);
        assert_eq!(counts.kept(&filter(None, Some(10_000), Some(40_000))), 620);
        assert_eq!(counts.kept(&filter(None, Some(10_001), Some(10_999))), 0, "no price in between");
        assert_eq!(counts.kept(&filter(None, None, Some(0))), 20);
        assert_eq!(counts.kept(&filter(Some(Category::Camping), Some(99_000), None)), 10);
        assert_eq!(counts.kept(&filter(None, Some(100_000), None)), 0);
        assert_eq!(counts.kept(&filter(None, Some(50), Some(10))), 0, "an empty range");
    }

    #[test]
    fn many_distinct_prices_are_thinned_and_counted_within_a_few_percent() {
        // 100,000 items of 100,000 distinct prices (1 to 100,000), rising by one.
        let rows = (1..=100_000).map(|p| ("home".to_string(), p, 1));
        let counts = Counts::from_sorted(rows);
        assert!(counts.by_category[slot(Category::Home)].knots.len() <= MAX_KNOTS);
        assert_eq!(counts.total(), 100_000);
        assert_eq!(counts.kept(&filter(Some(Category::Home), None, None)), 100_000);
        for (lo, hi) in [(1, 100_000), (10_000, 40_000), (50_000, 50_999), (99_950, 200_000), (1, 30)] {
            let kept = counts.kept(&filter(None, Some(lo), Some(hi))) as f64;
            let truth = f64::from(hi.min(100_000) - lo + 1);
            assert!((kept - truth).abs() <= truth * 0.02 + 100.0, "{lo}..={hi}: {kept} for {truth}");
        }
    }

    #[test]
    fn a_million_distinct_prices_never_hold_more_than_four_times_max_knots() {
        let mut counts = Counts::empty();
        for p in 0..1_000_000u32 {
            counts.add("tools", p, 1);
            assert!(counts.by_category[slot(Category::Tools)].knots.len() < 4 * MAX_KNOTS);
        }
        let counts = counts.finish();
        assert!(counts.by_category[slot(Category::Tools)].knots.len() <= MAX_KNOTS);
        assert_eq!(counts.total(), 1_000_000);
        let kept = counts.kept(&filter(Some(Category::Tools), Some(250_000), Some(499_999))) as f64;
        assert!((kept - 250_000.0).abs() < 2_500.0, "{kept}");
    }

    #[test]
    fn a_heavy_price_among_many_stays_at_its_price_when_thinned() {
        // Prices 1 to 2,000 with one item each, and 100,000 more items at 1,500.
        let rows = (1..=2_000u32).map(|p| ("tools".to_string(), p, if p == 1_500 { 100_001 } else { 1 }));
        let counts = Counts::from_sorted(rows);
        assert!(counts.by_category[slot(Category::Tools)].thinned);
        let below = counts.kept(&filter(None, None, Some(1_499))) as f64;
        assert!((below - 1_499.0).abs() <= 30.0, "under 1,500: {below} for 1,499");
        let from = counts.kept(&filter(None, Some(1_500), None)) as f64;
        assert!((from - 100_501.0).abs() <= 30.0, "from 1,500: {from} for 100,501");
        assert_eq!(counts.kept(&filter(None, Some(1_500), Some(1_500))), 100_001);
    }

    #[test]
    fn thinning_keeps_the_last_point_and_at_most_max_knots() {
        let mut cdf = Cdf::default();
        for p in 0..5_000 {
            cdf.push(p, 1 + u64::from(p % 3));
        }
        let total = cdf.total();
        cdf.thin();
        assert!(cdf.thinned && cdf.knots.len() <= MAX_KNOTS, "{}", cdf.knots.len());
        assert_eq!(cdf.knots.last(), Some(&(4_999, total)));
        assert!(cdf.knots.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
    }
}
