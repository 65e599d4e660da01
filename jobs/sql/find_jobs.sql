-- The queue's jobs of one id ($2) or of some keys ($3: an order's two jobs,
-- see src/enqueue.rs), as list_jobs.sql reads them. Both columns are
-- indexed (the primary key, apalis's unique key per job type).
select id,
       status,
       attempts,
       max_attempts,
       run_at,
       done_at,
       convert_from(job, 'UTF8')::jsonb ->> 'order_number' as order_number,
       idempotency_key,
       last_result ->> 'Err' as last_error
from apalis.jobs
where job_type = $1
  and (id = $2 or idempotency_key = any ($3::text[]))
order by run_at, id
