//! What finished jobs in history cost: apalis's fetch (`get_jobs`) and a
//! whole-table count like the board's and `/metrics`'s, with and without
//! history, and after retention pruned it.

use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;

use crate::setup::Bench;

#[derive(Debug, Clone, Copy, Default)]
pub struct Fetch {
    pub history: i64,
    pub fetch_ms: f64,
    pub count_by_status_ms: f64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct History {
    pub empty: Fetch,
    pub full: Fetch,
    pub pruned: Fetch,
    pub prune_seconds: f64,
}

pub async fn measure(bench: &Bench, history: i64) -> anyhow::Result<History> {
    let db = bench.orm();
    jobs::bench::start_fetch_probe(&db).await?;
    jobs::bench::vacuum(&db).await?;
    let empty = time(&db).await?;
    // a week and a day old: what retention prunes
    let week = Duration::from_secs(7 * 24 * 3600);
    jobs::bench::add_history(&db, history, week + Duration::from_secs(24 * 3600)).await?;
    jobs::bench::vacuum(&db).await?;
    let full = time(&db).await?;
    let started = Instant::now();
    jobs::admin::prune_finished_jobs(&db, week).await?;
    let prune_seconds = started.elapsed().as_secs_f64();
    jobs::bench::vacuum(&db).await?;
    let pruned = time(&db).await?;
    Ok(History {
        empty,
        full,
        pruned,
        prune_seconds,
    })
}

async fn time(db: &DatabaseConnection) -> anyhow::Result<Fetch> {
    let history = jobs::bench::finished(db).await?;
    let rounds = 50;
    let mut fetch = Duration::ZERO;
    let mut count = Duration::ZERO;
    for _ in 0..rounds {
        fetch += jobs::bench::fetch_probe(db).await?;
        let t = Instant::now();
        jobs::admin::count_by_status(db).await?;
        count += t.elapsed();
    }
    Ok(Fetch {
        history,
        fetch_ms: fetch.as_secs_f64() * 1000.0 / rounds as f64,
        count_by_status_ms: count.as_secs_f64() * 1000.0 / rounds as f64,
    })
}
