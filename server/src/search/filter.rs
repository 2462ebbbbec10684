//! `GET /rentals/search` parameters, parsed into a [`SearchRequest`] (errors name the
//! parameter), and the SQL of the filters every search applies alike.

use serde::Deserialize;
use sqlx::MySql;
use sqlx::mysql::MySqlArguments;
use sqlx::query::{Query, QueryAs};

use crate::error::ApiError;
use crate::rental::Category;
use crate::rental::input::PRICE_MAX;
use crate::rental::reservations::DateRange;
use crate::time::parse_date;

pub const Q_MAX: usize = 500;
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// The query string as sent: every value a string, so a bad one is a 422 naming it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// What to look for, 1 to 500 characters.
    #[param(value_type = String, required = true, min_length = 1, max_length = 500)]
    pub q: Option<String>,
    /// Only items of this category.
    #[param(value_type = Option<Category>)]
    pub category: Option<String>,
    /// Lowest price per day, 0 to 10,000,000.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 10000000)]
    pub min_price: Option<String>,
    /// Highest price per day, 0 to 10,000,000, not below `min_price`.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 10000000)]
    pub max_price: Option<String>,
    /// Only items with no approved reservation from this day (`YYYY-MM-DD`) ...
    #[param(value_type = Option<chrono::NaiveDate>)]
    pub available_from: Option<String>,
    /// ... to this day, inclusive; either alone means that single day.
    #[param(value_type = Option<chrono::NaiveDate>)]
    pub available_to: Option<String>,
    /// Hits to return, 1 to 100; 20 when not given.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// Filters on the items a search may return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    pub category: Option<Category>,
    pub min_price: Option<u32>,
    pub max_price: Option<u32>,
    /// No approved reservation overlapping these days.
    pub available: Option<DateRange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    pub q: String,
    pub filter: SearchFilter,
    pub limit: u32,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn price(field: &'static str, raw: Option<&str>) -> Result<Option<u32>, ApiError> {
    raw.map(|raw| match raw.parse::<i64>() {
        Ok(n) if (0..=PRICE_MAX).contains(&n) => Ok(n as u32),
        _ => Err(ApiError::invalid(field, format!("`{raw}` is not a whole number from 0 to {PRICE_MAX}"))),
    })
    .transpose()
}

impl SearchQuery {
    pub fn parse(&self) -> Result<SearchRequest, ApiError> {
        let q = non_empty(&self.q).ok_or_else(|| ApiError::invalid("q", "is required: 1 to 500 characters"))?;
        let chars = q.chars().count();
        if chars > Q_MAX {
            return Err(ApiError::invalid("q", format!("is {chars} characters long; at most {Q_MAX} are allowed")));
        }
        let limit = match non_empty(&self.limit) {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => n as u32,
                _ => return Err(ApiError::invalid("limit", format!("`{raw}` is not a number from 1 to {MAX_LIMIT}"))),
            },
        };
        let min_price = price("min_price", non_empty(&self.min_price))?;
        let max_price = price("max_price", non_empty(&self.max_price))?;
        if let (Some(min), Some(max)) = (min_price, max_price)
            && max < min
        {
            return Err(ApiError::invalid("max_price", format!("{max} is below min_price {min}")));
        }
        let from = non_empty(&self.available_from).map(|d| parse_date("available_from", d)).transpose()?;
        let to = non_empty(&self.available_to).map(|d| parse_date("available_to", d)).transpose()?;
        let available = match (from, to) {
            (Some(start), Some(end)) if end < start => {
                return Err(ApiError::invalid("available_to", format!("{end} is before available_from {start}")));
            }
            (Some(start), Some(end)) => Some(DateRange { start, end }),
            (Some(day), None) | (None, Some(day)) => Some(DateRange { start: day, end: day }),
            (None, None) => None,
        };
        Ok(SearchRequest {
            q: q.to_string(),
            filter: SearchFilter {
                category: non_empty(&self.category).map(|c| Category::parse_field("category", c)).transpose()?,
                min_price,
                max_price,
                available,
            },
            limit,
        })
    }
}

/// Binds a filter's values in order. `Query` and `QueryAs` both have `bind` but share no trait
/// that has it.
macro_rules! bind_each {
    ($query:expr, $values:expr) => {{
        let mut query = $query;
        for v in $values {
            query = match v {
                Value::Text(t) => query.bind(t),
                Value::Number(n) => query.bind(n),
                Value::Date(d) => query.bind(d),
            };
        }
        query
    }};
}

impl SearchFilter {
    pub fn is_empty(&self) -> bool {
        *self == SearchFilter::default()
    }

    /// `AND ...` conditions on the items alias `i`; bind with [`SearchFilter::bind`].
    /// The category and price conditions alone: what an index serves and can count.
    pub fn indexed_sql(&self) -> String {
        let mut sql = String::new();
        if self.category.is_some() {
            sql.push_str(" AND i.category = ?");
        }
        if self.min_price.is_some() {
            sql.push_str(" AND i.price_per_day >= ?");
        }
        if self.max_price.is_some() {
            sql.push_str(" AND i.price_per_day <= ?");
        }
        sql
    }

    /// Every condition, as ` AND ...` on the items aliased `i`; bind with [`SearchFilter::bind`].
    pub fn sql(&self) -> String {
        let mut sql = self.indexed_sql();
        if self.available.is_some() {
            sql.push_str(
                " AND NOT EXISTS (SELECT 1 FROM rental_reservations r WHERE r.item_id = i.id \
                 AND r.status = 'approved' AND r.start_date <= ? AND r.end_date >= ?)",
            );
        }
        sql
    }

    /// The values of [`SearchFilter::sql`] (or of `indexed_sql` alone), in order.
    fn values(&self, indexed_only: bool) -> Vec<Value> {
        let mut values = Vec::new();
        values.extend(self.category.map(|c| Value::Text(c.as_str())));
        values.extend(self.min_price.map(Value::Number));
        values.extend(self.max_price.map(Value::Number));
        if let Some(range) = self.available.filter(|_| !indexed_only) {
            values.extend([Value::Date(range.end), Value::Date(range.start)]);
        }
        values
    }

    pub fn bind<'q>(&self, query: Query<'q, MySql, MySqlArguments>) -> Query<'q, MySql, MySqlArguments> {
        bind_each!(query, self.values(false))
    }

    /// [`SearchFilter::bind`] for a typed query.
    pub fn bind_as<'q, O>(
        &self,
        query: QueryAs<'q, MySql, O, MySqlArguments>,
    ) -> QueryAs<'q, MySql, O, MySqlArguments> {
        bind_each!(query, self.values(false))
    }

    /// The values of [`SearchFilter::indexed_sql`], for a typed query.
    pub fn bind_indexed<'q, O>(
        &self,
        query: QueryAs<'q, MySql, O, MySqlArguments>,
    ) -> QueryAs<'q, MySql, O, MySqlArguments> {
        bind_each!(query, self.values(true))
    }
}

/// One bound value of a filter.
enum Value {
    Text(&'static str),
    Number(u32),
    Date(chrono::NaiveDate),
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn field(q: SearchQuery) -> &'static str {
        match q.parse() {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    fn q(text: &str) -> SearchQuery {
        SearchQuery { q: Some(text.into()), ..Default::default() }
    }

    #[test]
    fn bad_parameters_are_named() {
        assert_eq!(field(SearchQuery::default()), "q");
        assert_eq!(field(q("  ")), "q");
        assert_eq!(field(q(&"텐".repeat(501))), "q");
        assert_eq!(field(SearchQuery { limit: Some("1000000".into()), ..q("tent") }), "limit");
        assert_eq!(field(SearchQuery { limit: Some("0".into()), ..q("tent") }), "limit");
        assert_eq!(field(SearchQuery { min_price: Some("-1".into()), ..q("tent") }), "min_price");
        assert_eq!(
            field(SearchQuery { min_price: Some("10".into()), max_price: Some("5".into()), ..q("tent") }),
            "max_price"
        );
        assert_eq!(field(SearchQuery { category: Some("cars".into()), ..q("tent") }), "category");
        let backwards = SearchQuery {
            available_from: Some("2026-12-10".into()),
            available_to: Some("2026-12-01".into()),
            ..q("x")
        };
        assert_eq!(field(backwards), "available_to");
    }

    #[test]
    fn one_availability_date_means_that_day() {
        let req = SearchQuery { available_from: Some("2026-12-10".into()), ..q("tent") }.parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 12, 10).unwrap();
        assert_eq!(req.filter.available, Some(DateRange { start: day, end: day }));
        assert_eq!(req.limit, DEFAULT_LIMIT);
    }
}
