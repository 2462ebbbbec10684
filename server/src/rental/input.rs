//! The body of `POST /rentals` and `PATCH /rentals/{id}`, and its validation into
//! [`RentalFields`]: every error names the field at fault and the accepted range.

use serde::Deserialize;

use super::Category;
use crate::diary::text_field;
use crate::error::ApiError;

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 5_000;
pub const LOCATION_MAX: usize = 200;
pub const PRICE_MAX: i64 = 10_000_000;
pub const PHOTOS_MAX: usize = 10;
pub const PHOTO_URL_MAX: usize = 2_000;

/// An item as sent. Category stays a string and the numbers signed so that an unknown
/// category or a negative price is a 422 naming the field, not a serde 400.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RentalInput {
    /// Required to create.
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    /// Empty when not given at creation.
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    /// Required to create.
    #[schema(value_type = Option<Category>)]
    pub category: Option<String>,
    /// Required to create: whole currency units per day, 0 to 10,000,000.
    #[schema(minimum = 0, maximum = 10000000)]
    pub price_per_day: Option<i64>,
    /// 0 to 10,000,000; 0 when not given at creation.
    #[schema(minimum = 0, maximum = 10000000)]
    pub deposit: Option<i64>,
    /// Free text such as a neighbourhood.
    #[schema(max_length = 200)]
    pub location: Option<String>,
    /// Up to 10 `http` or `https` URLs.
    #[schema(max_items = 10)]
    pub photo_urls: Option<Vec<String>>,
}

/// What `POST /rentals` requires, for the OpenAPI document: the body is [`RentalInput`]
/// (whose fields are all optional, as an update takes them), but creating one needs these.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema only: nothing reads its fields
pub struct NewRental {
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    /// Empty when not given.
    #[schema(max_length = 5000)]
    description: Option<String>,
    category: super::Category,
    /// Whole currency units per day, 0 to 10,000,000.
    #[schema(minimum = 0, maximum = 10000000)]
    price_per_day: i64,
    /// 0 to 10,000,000; 0 when not given.
    #[schema(minimum = 0, maximum = 10000000)]
    deposit: Option<i64>,
    /// Free text such as a neighbourhood.
    #[schema(max_length = 200)]
    location: Option<String>,
    /// Up to 10 `http` or `https` URLs.
    #[schema(max_items = 10)]
    photo_urls: Option<Vec<String>>,
}

/// Validated fields; `None` means "not given" (for updates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RentalFields {
    pub title: Option<String>,
    pub description: Option<String>,
    pub category: Option<Category>,
    pub price_per_day: Option<u32>,
    pub deposit: Option<u32>,
    pub location: Option<String>,
    pub photo_urls: Option<Vec<String>>,
}

fn price(field: &'static str, value: i64) -> Result<u32, ApiError> {
    if !(0..=PRICE_MAX).contains(&value) {
        return Err(ApiError::invalid(
            field,
            format!("{value} is out of range: use a whole number from 0 to {PRICE_MAX}"),
        ));
    }
    Ok(value as u32)
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<String, ApiError> {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars > max {
        return Err(ApiError::invalid(field, format!("is {chars} characters long; at most {max} are allowed")));
    }
    Ok(trimmed.to_string())
}

fn photos(urls: &[String]) -> Result<Vec<String>, ApiError> {
    if urls.len() > PHOTOS_MAX {
        return Err(ApiError::invalid(
            "photo_urls",
            format!("{} URLs sent; at most {PHOTOS_MAX} are allowed", urls.len()),
        ));
    }
    urls.iter()
        .enumerate()
        .map(|(i, raw)| {
            let bad = |why: &str| ApiError::invalid("photo_urls", format!("URL {} (`{raw}`) {why}", i + 1));
            if raw.len() > PHOTO_URL_MAX {
                return Err(bad(&format!("is longer than {PHOTO_URL_MAX} bytes")));
            }
            let url = url::Url::parse(raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
            match url.scheme() {
                "http" | "https" if url.host().is_some() => Ok(url.to_string()),
                _ => Err(bad("must be an http or https URL with a host")),
            }
        })
        .collect()
}

impl RentalInput {
    pub fn parse(&self) -> Result<RentalFields, ApiError> {
        Ok(RentalFields {
            title: self.title.as_deref().map(|t| text_field("title", t, TITLE_MAX)).transpose()?,
            description: self.description.as_deref().map(|d| bounded("description", d, DESCRIPTION_MAX)).transpose()?,
            category: self.category.as_deref().map(|c| Category::parse_field("category", c)).transpose()?,
            price_per_day: self.price_per_day.map(|p| price("price_per_day", p)).transpose()?,
            deposit: self.deposit.map(|d| price("deposit", d)).transpose()?,
            location: self.location.as_deref().map(|l| bounded("location", l, LOCATION_MAX)).transpose()?,
            photo_urls: self.photo_urls.as_deref().map(photos).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(input: RentalInput) -> &'static str {
        match input.parse() {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn every_invalid_field_is_named() {
        assert_eq!(field_of(RentalInput { title: Some(" ".into()), ..Default::default() }), "title");
        assert_eq!(field_of(RentalInput { title: Some("x".repeat(201)), ..Default::default() }), "title");
        assert_eq!(field_of(RentalInput { description: Some("가".repeat(5001)), ..Default::default() }), "description");
        assert_eq!(field_of(RentalInput { category: Some("cars".into()), ..Default::default() }), "category");
        assert_eq!(field_of(RentalInput { price_per_day: Some(-1), ..Default::default() }), "price_per_day");
        assert_eq!(field_of(RentalInput { deposit: Some(10_000_001), ..Default::default() }), "deposit");
        let many = vec!["https://example.test/a.jpg".to_string(); 11];
        assert_eq!(field_of(RentalInput { photo_urls: Some(many), ..Default::default() }), "photo_urls");
        let ftp = vec!["ftp://example.test/a.jpg".to_string()];
        assert_eq!(field_of(RentalInput { photo_urls: Some(ftp), ..Default::default() }), "photo_urls");
    }

    #[test]
    fn valid_input_is_trimmed_and_kept() {
        let fields = RentalInput {
            title: Some("  Tent ".into()),
            category: Some("camping".into()),
            price_per_day: Some(0),
            photo_urls: Some(vec!["https://example.test/a.jpg".into()]),
            ..Default::default()
        }
        .parse()
        .unwrap();
        assert_eq!(fields.title.as_deref(), Some("Tent"));
        assert_eq!(fields.category, Some(Category::Camping));
        assert_eq!(fields.price_per_day, Some(0));
    }
}
