//! Bounded sales history: quarter hours older than their retention are
//! rolled into days of the shop's time zone, a day per transaction, in the
//! background of every `serve` and `worker` process (as job history is
//! pruned). A day's rows hold the sums its quarter hours held, so figures
//! still equal their buckets and a report by day reads the same.
//!
//! The rollup takes the figures' lock alone, as a rebuild does: no run is
//! half-way through counting when the horizon moves, and none reads an old
//! horizon after it (`sales_bucket`, migration 000014). A day is quick to
//! roll (its rows, a few thousand for a busy shop), so runs wait briefly.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::JobError;
use crate::analytics::FIGURES_LOCK;

/// How long sales stay in quarter hours, and the zone whose days they roll
/// into.
#[derive(Clone, Debug)]
pub struct SalesRetention {
    pub quarter_hours: Duration,
    /// An IANA zone name PostgreSQL knows (`pg_timezone_names`).
    pub time_zone: String,
}

/// Rolls up every day whose quarter hours are all older than the retention
/// at `now`, oldest first; returns the days rolled.
pub async fn roll_up_sales(
    db: &DatabaseConnection,
    retention: &SalesRetention,
    now: DateTime<Utc>,
) -> Result<u32, JobError> {
    let keep_from = now
        - chrono::TimeDelta::from_std(retention.quarter_hours)
            .map_err(|_| JobError::Setup("SALES_HOURS_RETENTION is out of range".into()))?;
    let mut days = 0;
    while roll_up_day(db, keep_from, &retention.time_zone).await? {
        days += 1;
    }
    Ok(days)
}

/// Rolls up the oldest day kept in quarter hours if it ends before
/// `keep_from`; false when there is none.
async fn roll_up_day(
    db: &DatabaseConnection,
    keep_from: DateTime<Utc>,
    time_zone: &str,
) -> Result<bool, JobError> {
    let next_day = || {
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("../sql/sales_rollup/next_day.sql"),
            [keep_from.into(), time_zone.into()],
        )
    };
    // looked up before the lock too: taking it waits for the runs in flight
    // and holds new ones back, which is for a day to roll only
    if db.query_one_raw(next_day()).await?.is_none() {
        return Ok(false);
    }
    let txn = db.begin().await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        include_str!("../sql/rebuild/lock_figures.sql"),
        [FIGURES_LOCK.into()],
    ))
    .await?;
    let Some(day) = txn.query_one_raw(next_day()).await? else {
        return Ok(false);
    };
    let from: DateTime<Utc> = day.try_get("", "rolled_from")?;
    let to: DateTime<Utc> = day.try_get("", "ends_at")?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        include_str!("../sql/sales_rollup/roll_up_day.sql"),
        [from.into(), to.into(), time_zone.into()],
    ))
    .await?;
    txn.commit().await?;
    info!(%from, %to, time_zone, "rolled a day of sales per quarter hour into one row");
    Ok(true)
}

/// Rolls up now and then every `every` until `shutdown`.
pub async fn run_sales_rollup(
    db: DatabaseConnection,
    retention: SalesRetention,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = roll_up_sales(&db, &retention, Utc::now()).await {
            warn!(error = %e, "rolling up sales per quarter hour failed; trying again later");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
