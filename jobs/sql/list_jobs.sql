-- The queue's jobs, newest first, optionally of one status, with the order
-- each one is for, its key (which tells a cancellation's job: see
-- src/enqueue.rs) and the error of its last attempt.
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
  and ($2::text is null or status = $2)
order by run_at desc, id desc
limit $3
