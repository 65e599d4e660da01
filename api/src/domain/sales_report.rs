//! What sold when: units, revenue and orders per hour or per day of the
//! shop's time zone (`STORE_TIME_ZONE`), for the shop, a category or a
//! product, from the buckets the counting run keeps (`domain::sales`).

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use super::catalog::Category;
use crate::error::{ApiError, ApiResult};
use crate::money::Cents;

/// The most hours, or days, one report spans: a dashboard's month by hour
/// or years by day, and a bound on what one request reads.
pub const MAX_PERIODS: i64 = 1000;

/// How long a report's periods are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grain {
    Hour,
    /// The zone's day: 23 or 25 hours across a daylight-saving change.
    Day,
}

impl Grain {
    fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// Its usual length (a day's differs by an hour twice a year in some
    /// zones: enough to bound a span).
    fn length(self) -> TimeDelta {
        match self {
            Self::Hour => TimeDelta::hours(1),
            Self::Day => TimeDelta::days(1),
        }
    }
}

/// Whose sales.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    Shop,
    Category(&'a Category),
    Product(i64),
}

/// From `from` to `to` by `grain`: the period `from` falls in first, then
/// every one that starts before `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub grain: Grain,
}

impl Span {
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>, grain: Grain) -> ApiResult<Self> {
        // what PostgreSQL's zones and dates handle without surprise
        if [from, to]
            .iter()
            .any(|t| !(1900..=9999).contains(&t.year()))
        {
            return Err(ApiError::bad_input(
                "from and to must be instants of the years 1900 to 9999",
            ));
        }
        if from >= to {
            return Err(ApiError::bad_input("from must be before to"));
        }
        if to - from > grain.length() * MAX_PERIODS as i32 {
            return Err(ApiError::bad_input(format!(
                "a report spans at most {MAX_PERIODS} {}s: ask for a shorter span{}",
                grain.name(),
                if grain == Grain::Hour {
                    ", or by DAY"
                } else {
                    ""
                }
            )));
        }
        Ok(Self { from, to, grain })
    }
}

/// What sold in one period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub units: i64,
    pub revenue: Cents,
    pub orders: i64,
}

/// Every period of `span` in `time_zone`, zeros included. By hour, only
/// since the quarter hours kept (`SALES_HOURS_RETENTION`): an older hour is
/// part of a day rolled up, and is refused rather than shown as its day.
pub async fn sales_report<C: ConnectionTrait>(
    db: &C,
    span: Span,
    scope: Scope<'_>,
    time_zone: &str,
) -> ApiResult<Vec<Period>> {
    let (product, category) = match scope {
        Scope::Shop => (None, None),
        Scope::Category(category) => (None, Some(category.as_str().to_owned())),
        Scope::Product(id) => (Some(id), None),
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("sql/sales_report.sql"),
            [
                span.from.into(),
                span.to.into(),
                span.grain.name().into(),
                time_zone.into(),
                Value::from(product),
                Value::from(category),
            ],
        ))
        .await?;
    let mut periods = Vec::with_capacity(rows.len());
    for row in &rows {
        let period = Period {
            starts_at: row.try_get("", "starts_at")?,
            ends_at: row.try_get("", "ends_at")?,
            units: row.try_get("", "units")?,
            revenue: Cents(row.try_get("", "revenue_cents")?),
            orders: row.try_get("", "orders")?,
        };
        let hours_since: Option<DateTime<Utc>> = row.try_get("", "hours_since")?;
        if let (Grain::Hour, Some(since)) = (span.grain, hours_since)
            && period.starts_at < since
        {
            return Err(ApiError::bad_input(format!(
                "sales by hour are kept since {} (SALES_HOURS_RETENTION), by day before: \
                 ask for DAY, or from a later instant",
                since.to_rfc3339()
            )));
        }
        periods.push(period);
    }
    Ok(periods)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_span_runs_forward_and_holds_at_most_a_thousand_periods() {
        let from = at("2026-01-01T00:00:00Z");
        assert!(Span::new(from, from + TimeDelta::hours(1000), Grain::Hour).is_ok());
        assert!(Span::new(from, from + TimeDelta::days(1000), Grain::Day).is_ok());
        for (to, grain, message) in [
            (from, Grain::Day, "from must be before to"),
            (
                from - TimeDelta::seconds(1),
                Grain::Hour,
                "from must be before to",
            ),
            (
                from + TimeDelta::hours(1000) + TimeDelta::seconds(1),
                Grain::Hour,
                "a report spans at most 1000 hours: ask for a shorter span, or by DAY",
            ),
            (
                from + TimeDelta::days(1001),
                Grain::Day,
                "a report spans at most 1000 days: ask for a shorter span",
            ),
            (
                at("9999-12-31T23:59:59Z") + TimeDelta::seconds(1),
                Grain::Day,
                "from and to must be instants of the years 1900 to 9999",
            ),
        ] {
            let refused = Span::new(from, to, grain).unwrap_err();
            assert_eq!(refused.code(), "BAD_USER_INPUT");
            assert_eq!(refused.message(), message);
        }
    }
}
