-- The queue's jobs, newest first, optionally of one status, with the order
-- each one is for (and whether it is the job of the order's cancellation,
-- by its key: see api/src/domain/sql/cancel_order.sql) and the error of its
-- last attempt.
select id,
       status,
       attempts,
       max_attempts,
       run_at,
       done_at,
       convert_from(job, 'UTF8')::jsonb ->> 'order_number' as order_number,
       coalesce(idempotency_key like 'cancel-%', false) as cancellation,
       last_result ->> 'Err' as last_error
from apalis.jobs
where job_type = $1
  and ($2::text is null or status = $2)
order by run_at desc, id desc
limit $3
