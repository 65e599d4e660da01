-- A counting run marks done the jobs of the orders it counted, by their keys
-- (jobs/sql/retire_jobs.sql: `idempotency_key = any ($1)`, 499 keys for a
-- batch of 500 orders). apalis's unique index on (job_type, idempotency_key)
-- finds them, but says nothing of the key alone: on a table PostgreSQL has no
-- statistics for (never analyzed, or a burst that outran autovacuum) it takes
-- each key to match 0.5% of the jobs, 499 keys nine in ten of them, and reads
-- every job of the queue instead (0.7-1.8 s a run with 1.5 million jobs,
-- against a few ms). A unique index on the key alone tells it, statistics or
-- none, that a key names at most one job: reading the keys through it is the
-- only plan. It covers the post-order queue (jobs::QUEUE, which no release
-- renames: the jobs already queued carry it), which the retirement names in
-- its text for the planner to see. apalis's own index stays: for this
-- queue's jobs both say the same, so neither refuses a row the other takes.
create unique index order_analytics_job_keys on apalis.jobs (idempotency_key)
    where job_type = 'order_analytics';
