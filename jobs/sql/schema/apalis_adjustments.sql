-- Every process runs this at start (replicas at once): they take turns, as
-- two changes of one catalog row at once fail ("tuple concurrently
-- updated"). The file runs as one transaction, which holds the lock to its
-- end. (The key spells "apalis", in hex.)
select pg_advisory_xact_lock(x'6170616c6973'::bigint);

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

-- apalis-postgres's fetch (apalis.get_jobs) takes its LIMIT as a parameter
-- of a SQL function, so PostgreSQL plans the UPDATE without knowing it and
-- assumes a tenth of the waiting jobs: with statistics and a backlog of
-- 500,000 it joins them by hashing a scan of the whole jobs table, 650-850 ms
-- a fetch instead of about 10 ms. The fetch takes a few jobs by primary key;
-- a nested loop is the only plan that suits it, whatever the statistics say.
-- (Fails, and says so, if an apalis upgrade changes the function's
-- arguments: its plan must then be looked at again.)
alter function apalis.get_jobs(text, text, integer)
    set enable_hashjoin = off
    set enable_mergejoin = off;
