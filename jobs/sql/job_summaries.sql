-- The start of a statement reading the queue's jobs as JobSummary rows
-- (src/admin.rs): each with the order it is for, its key (which tells a
-- cancellation's job: see src/enqueue.rs) and the error of its last
-- attempt. Its caller adds conditions after `job_type = $1`.
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
