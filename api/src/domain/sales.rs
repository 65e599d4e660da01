//! Sales over time, from the buckets the counting run keeps (units, revenue
//! and orders per quarter hour: `migration/sql/m20251207_000013_sales_over_time.up.sql`).

use chrono::{DateTime, TimeDelta, Utc};
use entity::products;
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};

use super::catalog::Category;
use crate::error::{ApiError, ApiResult};

/// The buckets' grain: every zone in use is a whole number of these from UTC.
pub const BUCKET_SECONDS: i64 = 15 * 60;

/// The start of the quarter hour `instant` falls in (as the SQL's
/// `date_bin('15 minutes', …, '2000-01-01 00:00+00')`: that origin is a
/// whole number of quarter hours after the Unix epoch).
pub fn bucket_start(instant: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = instant.timestamp().div_euclid(BUCKET_SECONDS) * BUCKET_SECONDS;
    DateTime::from_timestamp(seconds, 0).expect("a quarter hour of a valid instant is valid")
}

/// How far back "now" reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    Week,
}

impl Window {
    fn length(self) -> TimeDelta {
        match self {
            Self::Hour => TimeDelta::hours(1),
            Self::Day => TimeDelta::days(1),
            Self::Week => TimeDelta::weeks(1),
        }
    }

    /// Where the window reaching back from `now` starts: the start of the
    /// quarter hour that was this long ago, so it holds at least its length
    /// and at most a quarter hour more.
    pub fn since(self, now: DateTime<Utc>) -> DateTime<Utc> {
        bucket_start(now - self.length())
    }
}

/// The start of the window a later page keeps (from its cursor): refused
/// when older than the longest window allows, plus a day to page through it,
/// since a cursor is the client's to forge and an old start would make every
/// page read the whole history.
pub fn resume(since: DateTime<Utc>, now: DateTime<Utc>) -> ApiResult<DateTime<Utc>> {
    if since < Window::Week.since(now) - TimeDelta::days(1) {
        return Err(ApiError::bad_input(
            "after is a cursor of a window long past: start again from the first page",
        ));
    }
    Ok(since)
}

/// A product and the units it sold in the window.
#[derive(Clone, Debug)]
pub struct Trending {
    pub product: products::Model,
    pub units: i64,
}

/// Where a product stands among the best sellers of a window: its units,
/// then its id (ties go to the newer product).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrendingPosition {
    pub units: i64,
    pub id: i64,
}

/// The products sold since `since`, best sellers first, optionally of one
/// category, after `after`; at most `limit`.
pub async fn trending<C: ConnectionTrait>(
    db: &C,
    since: DateTime<Utc>,
    category: Option<&Category>,
    after: Option<TrendingPosition>,
    limit: u64,
) -> ApiResult<Vec<Trending>> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("sql/trending_products.sql"),
            [
                since.into(),
                category.map(|c| c.as_str().to_owned()).into(),
                after.map(|a| a.units).into(),
                after.map(|a| a.id).into(),
                Value::from(limit as i64),
            ],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Trending {
                product: products::Model::from_query_result(row, "")?,
                units: row.try_get("", "window_units")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn an_instant_falls_in_its_quarter_hour() {
        assert_eq!(
            bucket_start(at("2026-12-07T11:59:59.999Z")),
            at("2026-12-07T11:45:00Z")
        );
        assert_eq!(
            bucket_start(at("2026-12-07T12:00:00Z")),
            at("2026-12-07T12:00:00Z")
        );
        assert_eq!(
            bucket_start(at("1969-12-31T23:59:59Z")),
            at("1969-12-31T23:45:00Z")
        );
    }

    #[test]
    fn a_page_resumes_a_window_of_the_last_eight_days_only() {
        let now = at("2026-12-07T12:07:00Z");
        let week = Window::Week.since(now);
        assert_eq!(resume(week, now).unwrap(), week);
        let day_later = week - TimeDelta::days(1);
        assert_eq!(resume(day_later, now).unwrap(), day_later);
        let refused = resume(day_later - TimeDelta::seconds(1), now).unwrap_err();
        assert_eq!(refused.code(), "BAD_USER_INPUT");
    }

    #[test]
    fn a_window_holds_at_least_its_length() {
        let now = at("2026-12-07T12:07:00Z");
        assert_eq!(Window::Hour.since(now), at("2026-12-07T11:00:00Z"));
        assert_eq!(Window::Day.since(now), at("2026-12-06T12:00:00Z"));
        assert_eq!(Window::Week.since(now), at("2026-11-30T12:00:00Z"));
    }
}
