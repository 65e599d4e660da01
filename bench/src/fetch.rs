//! What finished jobs in history cost: apalis's fetch (`get_jobs`) and a
//! whole-table count like the board's and `/metrics`'s, with and without
//! history, and after retention pruned it.

use std::time::{Duration, Instant};

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
    sqlx::raw_sql(
        "delete from apalis.jobs;
         insert into apalis.workers (id, worker_type, storage_name, layers, last_seen)
         values ('bench-fetch', 'bench_fetch', 'PgStorage', '', now()) on conflict do nothing;
         insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at)
         select 'pending-' || n, 'bench_fetch', '\\x7b7d', 'Pending', 0, 5, now() - interval '1 minute'
         from generate_series(1, 100) n;",
    )
    .execute(&bench.pool)
    .await?;
    sqlx::raw_sql("vacuum analyze apalis.jobs")
        .execute(&bench.pool)
        .await?;
    let empty = time(bench).await?;
    sqlx::query(
        "insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, done_at, last_result)
         select 'done-' || n, $2, '\\x7b7d', 'Done', 1, 5,
                now() - interval '8 days', now() - interval '8 days', '{\"Ok\": null}'
         from generate_series(1, $1) n",
    )
    .bind(history)
    .bind(jobs::QUEUE)
    .execute(&bench.pool)
    .await?;
    sqlx::raw_sql("vacuum analyze apalis.jobs")
        .execute(&bench.pool)
        .await?;
    let full = time(bench).await?;
    let started = Instant::now();
    let db = tally::db::orm(&bench.pool);
    jobs::admin::prune_finished_jobs(&db, Duration::from_secs(7 * 24 * 3600)).await?;
    let prune_seconds = started.elapsed().as_secs_f64();
    sqlx::raw_sql("vacuum analyze apalis.jobs")
        .execute(&bench.pool)
        .await?;
    let pruned = time(bench).await?;
    Ok(History {
        empty,
        full,
        pruned,
        prune_seconds,
    })
}

async fn time(bench: &Bench) -> anyhow::Result<Fetch> {
    let history = bench
        .count("select count(*) from apalis.jobs where status = 'Done'")
        .await?;
    let rounds = 50;
    let mut fetch = Duration::ZERO;
    let mut count = Duration::ZERO;
    for _ in 0..rounds {
        let mut tx = bench.pool.begin().await?;
        let t = Instant::now();
        sqlx::query("select * from apalis.get_jobs('bench-fetch', 'bench_fetch', 10)")
            .fetch_all(&mut *tx)
            .await?;
        fetch += t.elapsed();
        // leave the pending jobs pending for the next round
        tx.rollback().await?;
        let t = Instant::now();
        sqlx::query(include_str!("../../api/src/domain/sql/jobs_by_status.sql"))
            .bind(jobs::QUEUE)
            .fetch_all(&bench.pool)
            .await?;
        count += t.elapsed();
    }
    Ok(Fetch {
        history,
        fetch_ms: fetch.as_secs_f64() * 1000.0 / rounds as f64,
        count_by_status_ms: count.as_secs_f64() * 1000.0 / rounds as f64,
    })
}
