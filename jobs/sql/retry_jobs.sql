-- Puts failed (or killed) jobs back to pending with their attempts reset:
-- the jobs of the queue with the ids $2 (of failed_jobs.sql's, those a
-- worker can read). Running, pending and finished jobs are left alone, also
-- when one of those changed since. The job stays idempotent, so a retry of
-- an order that meanwhile got counted is a harmless no-op. The
-- retried jobs' orders that were held back (hold_back_order.sql) are
-- released in the same statement: batches and sweeps may take them again.
with retried as (
    update apalis.jobs
    set status = 'Pending',
        attempts = 0,
        run_at = now(),
        lock_by = null,
        lock_at = null,
        done_at = null,
        last_result = null
    where job_type = $1
      and id = any ($2::text[])
      and status in ('Failed', 'Killed')
    returning id, job
),
released as (
    update orders o
    set analytics_held_back_at = null,
        analytics_failure = null
    from retried r
    -- a payload src/admin.rs has read as a post-order job's
    where o.id = (convert_from(r.job, 'UTF8')::jsonb ->> 'order_id')::bigint
      and o.analytics_held_back_at is not null
)
select id
from retried
