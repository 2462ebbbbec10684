//! Keyset pagination: a page is "the next `limit` rows after this id", so page 1,000 costs
//! what page 1 costs. Cursors are opaque to clients (base64url of the last id).

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// `?limit=&cursor=` as sent; parsed by [`PageQuery::parse`] so errors name the field.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 100; 20 when not given.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page, unchanged; absent for the first page.
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    /// Rows strictly after (in the listing's order) this id.
    pub after: Option<u64>,
}

impl PageQuery {
    pub fn parse(&self) -> Result<Page, ApiError> {
        let limit = match self.limit.as_deref() {
            None | Some("") => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as u32,
                Ok(n) => return Err(ApiError::invalid("limit", format!("{n} is out of range: use 1 to {MAX_LIMIT}"))),
                Err(_) => {
                    return Err(ApiError::invalid("limit", format!("`{raw}` is not a number from 1 to {MAX_LIMIT}")));
                }
            },
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(decode_cursor(raw)?),
        };
        Ok(Page { limit, after })
    }
}

pub fn encode_cursor(id: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("k1:{id}"))
}

fn decode_cursor(raw: &str) -> Result<u64, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_cursor",
            "cursor is not one this server issued: pass `next_cursor` of the previous page unchanged",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix("k1:").and_then(|id| id.parse().ok()).ok_or_else(invalid)
}

/// One page of results and the cursor of the next (`null` on the last page).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says "there is more".
    pub fn from_rows(mut rows: Vec<T>, page: Page, id_of: impl Fn(&T) -> u64) -> Self {
        let more = rows.len() > page.limit as usize;
        rows.truncate(page.limit as usize);
        let next_cursor = if more { rows.last().map(|r| encode_cursor(id_of(r))) } else { None };
        Paged { items: rows, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(limit: Option<&str>, cursor: Option<&str>) -> PageQuery {
        PageQuery { limit: limit.map(Into::into), cursor: cursor.map(Into::into) }
    }

    #[test]
    fn cursors_round_trip() {
        let page = q(Some("5"), Some(&encode_cursor(42))).parse().unwrap();
        assert_eq!(page, Page { limit: 5, after: Some(42) });
    }

    #[test]
    fn limits_outside_the_range_name_the_field() {
        for bad in ["0", "-1", "101", "99999999999999999999", "ten"] {
            let err = q(Some(bad), None).parse().unwrap_err();
            assert!(matches!(err, ApiError::Invalid { field: "limit", .. }), "{bad}: {err:?}");
        }
    }

    #[test]
    fn forged_cursors_are_refused() {
        for bad in ["!!!", "aGVsbG8", &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("k1:-3")] {
            let err = q(None, Some(bad)).parse().unwrap_err();
            assert!(matches!(err, ApiError::BadRequest { code: "invalid_cursor", .. }), "{bad}: {err:?}");
        }
    }

    #[test]
    fn the_extra_row_makes_a_next_cursor() {
        let page = Page { limit: 2, after: None };
        let paged = Paged::from_rows(vec![9u64, 8, 7], page, |r| *r);
        assert_eq!(paged.items, vec![9, 8]);
        assert_eq!(paged.next_cursor, Some(encode_cursor(8)));
        let last = Paged::from_rows(vec![9u64], page, |r| *r);
        assert_eq!(last.next_cursor, None);
    }
}
