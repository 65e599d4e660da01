//! Sales over time: a report's periods and grains, as GraphQL shows them.

use async_graphql::{Context, Enum, Object};
use chrono::{DateTime, Utc};

use crate::domain::sales::Window;
use crate::domain::sales_report::{self, Grain, Period, Scope, Span};
use crate::error::ApiError;
use crate::graphql::context::ContextExt;
use crate::money::Cents;

/// How long a report's periods are, in the shop's time zone.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum SalesGrain {
    /// From the start of an hour of the zone to the next.
    Hour,
    /// From a midnight of the zone to the next: 23 or 25 hours on the days
    /// daylight saving starts or ends.
    Day,
}

/// The span a report field's arguments name: `by` DAY unless said.
pub(crate) fn span(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    by: Option<SalesGrain>,
) -> Result<Span, ApiError> {
    Span::new(from, to, by.unwrap_or(SalesGrain::Day).into())
}

impl From<SalesGrain> for Grain {
    fn from(grain: SalesGrain) -> Self {
        match grain {
            SalesGrain::Hour => Self::Hour,
            SalesGrain::Day => Self::Day,
        }
    }
}

/// What sold in one hour or day. Counted by the post-order job as it counts
/// the figures (a cancelled order taken back out), so the periods of a
/// product add up to its salesCount and totalRevenue.
pub struct SalesPeriod(pub Period);

#[Object]
impl SalesPeriod {
    async fn starts_at(&self) -> DateTime<Utc> {
        self.0.starts_at
    }

    /// Where the next period starts.
    async fn ends_at(&self) -> DateTime<Utc> {
        self.0.ends_at
    }

    /// Units sold, all variants together.
    async fn units(&self) -> i64 {
        self.0.units
    }

    /// The sum of the subtotals of the lines sold.
    async fn revenue(&self) -> Cents {
        self.0.revenue
    }

    /// Orders with a line of it (any line, for the whole shop): an order of
    /// two products is one order of each.
    async fn orders(&self) -> i64 {
        self.0.orders
    }
}

/// Sales per period between two instants, with their totals.
pub struct SalesReport {
    pub grain: SalesGrain,
    pub time_zone: String,
    pub periods: Vec<Period>,
}

impl SalesReport {
    /// The report of `span` in the shop's zone.
    pub(crate) async fn read(
        ctx: &Context<'_>,
        span: Span,
        scope: Scope<'_>,
    ) -> Result<Self, ApiError> {
        let state = ctx.state();
        let periods =
            sales_report::sales_report(&state.db, span, scope, &state.store_time_zone).await?;
        Ok(Self {
            grain: match span.grain {
                Grain::Hour => SalesGrain::Hour,
                Grain::Day => SalesGrain::Day,
            },
            time_zone: state.store_time_zone.to_string(),
            periods,
        })
    }
}

#[Object]
impl SalesReport {
    async fn by(&self) -> SalesGrain {
        self.grain
    }

    /// The zone whose hours and days these are (`STORE_TIME_ZONE`).
    async fn time_zone(&self) -> &str {
        &self.time_zone
    }

    /// Every period, oldest first, those without sales included (at zero).
    async fn periods(&self) -> Vec<SalesPeriod> {
        self.periods.iter().copied().map(SalesPeriod).collect()
    }

    async fn units(&self) -> i64 {
        self.periods.iter().map(|p| p.units).sum()
    }

    async fn revenue(&self) -> Cents {
        Cents(self.periods.iter().map(|p| p.revenue.0).sum())
    }

    /// Orders in the span: each counts in the one period it was placed in.
    async fn orders(&self) -> i64 {
        self.periods.iter().map(|p| p.orders).sum()
    }
}

/// A recent window of sales, reaching back from now.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum SalesWindow {
    /// The last hour (up to 1 h 15 min: from the start of its quarter hour).
    #[graphql(name = "LAST_HOUR")]
    Hour,
    /// The last 24 hours (and up to a quarter hour more).
    #[graphql(name = "LAST_DAY")]
    Day,
    /// The last 7 days (and up to a quarter hour more).
    #[graphql(name = "LAST_WEEK")]
    Week,
}

impl From<SalesWindow> for Window {
    fn from(window: SalesWindow) -> Self {
        match window {
            SalesWindow::Hour => Self::Hour,
            SalesWindow::Day => Self::Day,
            SalesWindow::Week => Self::Week,
        }
    }
}
