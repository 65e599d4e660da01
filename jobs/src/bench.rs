//! What `tally-bench` does to the jobs table between its measurements: the
//! same backlog again for each contender, a job history of a chosen size,
//! apalis's own fetch timed. Behind the `bench` feature: no server or worker
//! has a use for it, and the apalis table stays this crate's to touch.

use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, Statement, TransactionSession, TransactionTrait, Value,
};

use crate::admin::JobStatus;
use crate::{JobKind, QUEUE};

/// The worker and job type of the fetch probe: apart from the queue's, so
/// that no worker of Tally's takes its jobs.
const PROBE: &str = "bench_fetch";
const PROBE_WORKER: &str = "bench-fetch";

async fn run<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Result<u64, DbErr> {
    Ok(db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?
        .rows_affected())
}

/// Every job pending again, as if none had run, and no worker registered:
/// the same backlog for the next drain.
pub async fn requeue_all<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    run(
        db,
        "update apalis.jobs
         set status = 'Pending', attempts = 0, run_at = now() - interval '1 second',
             lock_by = null, lock_at = null, done_at = null, last_result = null
         where job_type = $1",
        [QUEUE.into()],
    )
    .await?;
    run(db, "delete from apalis.workers", []).await?;
    Ok(())
}

/// Every job of the queue finished now, as a rebuild leaves the orders.
pub async fn finish_all<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    run(
        db,
        "update apalis.jobs set status = 'Done', done_at = now()
         where job_type = $1 and status <> 'Done'",
        [QUEUE.into()],
    )
    .await?;
    Ok(())
}

/// Jobs of the queue finished: its history.
pub async fn finished<C: ConnectionTrait>(db: &C) -> Result<i64, DbErr> {
    Ok(crate::admin::count_by_status(db)
        .await?
        .into_iter()
        .find(|(status, _)| *status == JobStatus::Done)
        .map_or(0, |(_, count)| count))
}

/// The counting jobs of these orders, deleted (the orders are the caller's).
pub async fn delete_jobs_of<C: ConnectionTrait>(db: &C, order_ids: &[i64]) -> Result<u64, DbErr> {
    let keys: Vec<String> = order_ids.iter().map(|id| JobKind::Count.key(*id)).collect();
    run(
        db,
        "delete from apalis.jobs where idempotency_key = any ($1)",
        [keys.into()],
    )
    .await
}

/// `n` finished jobs of the queue, finished `ago`, as a week of orders
/// leaves them (their orders long gone: only their weight in the table and
/// its indexes matters).
pub async fn add_history<C: ConnectionTrait>(db: &C, n: i64, ago: Duration) -> Result<(), DbErr> {
    run(
        db,
        "insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                                  done_at, last_result, idempotency_key)
         select 'history-' || n, $2, '\\x7b7d', 'Done', 1, 5,
                now() - make_interval(secs => $3), now() - make_interval(secs => $3),
                '{\"Ok\": null}', 'history-' || n
         from generate_series(1, $1) n",
        [n.into(), QUEUE.into(), ago.as_secs_f64().into()],
    )
    .await?;
    Ok(())
}

/// The queue's table and its statistics, fresh (this machine's PostgreSQL
/// runs without autovacuum).
pub async fn vacuum<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    run(db, "vacuum analyze apalis.jobs", []).await?;
    Ok(())
}

/// An empty queue but for 100 pending jobs of a probe type, with a worker
/// to fetch them: what [`fetch_probe`] times apalis's fetch against.
pub async fn start_fetch_probe<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    run(db, "delete from apalis.jobs", []).await?;
    run(
        db,
        "insert into apalis.workers (id, worker_type, storage_name, layers, last_seen)
         values ($1, $2, 'PgStorage', '', now()) on conflict do nothing",
        [PROBE_WORKER.into(), PROBE.into()],
    )
    .await?;
    run(
        db,
        "insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at)
         select 'pending-' || n, $1, '\\x7b7d', 'Pending', 0, 5, now() - interval '1 minute'
         from generate_series(1, 100) n",
        [PROBE.into()],
    )
    .await?;
    Ok(())
}

/// How long apalis's fetch (`get_jobs`, 10 at a time) of the probe's jobs
/// takes, in a transaction rolled back: the jobs stay pending for the next.
pub async fn fetch_probe<C: ConnectionTrait + TransactionTrait>(db: &C) -> Result<Duration, DbErr> {
    let txn = db.begin().await?;
    let started = std::time::Instant::now();
    txn.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "select * from apalis.get_jobs($1, $2, 10)",
        [PROBE_WORKER.into(), PROBE.into()],
    ))
    .await?;
    let took = started.elapsed();
    txn.rollback().await?;
    Ok(took)
}
