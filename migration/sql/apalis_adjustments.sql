-- apalis-postgres wakes listening workers from a per-row AFTER INSERT trigger
-- that calls pg_notify. Every committing transaction that fired it then takes
-- PostgreSQL's server-wide notify lock through its disk flush, which
-- serialises all order placements. Tally wakes its in-process workers through
-- memory and lets other worker processes poll briefly, so the trigger goes.
drop trigger if exists notify_workers on apalis.jobs;

-- apalis-postgres's migrations leave two indexes twice over: unique_job_id
-- repeats the primary key and lidx repeats idx_apalis_jobs_lock_by. Every
-- job status change rewrites each of them, so the copies go.
drop index if exists apalis.unique_job_id;
drop index if exists apalis.lidx;
