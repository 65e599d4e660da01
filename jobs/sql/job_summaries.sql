-- The start of a statement reading the queue's jobs as JobSummary rows
-- (src/admin.rs): each with its payload (which names its order, and which
-- src/admin.rs decodes: a row may hold bytes no statement could read), its
-- key (which tells a cancellation's job: see src/enqueue.rs) and the error
-- of its last attempt. Its caller adds conditions after `job_type = $1`.
select id,
       status,
       attempts,
       max_attempts,
       run_at,
       done_at,
       job,
       idempotency_key,
       last_result ->> 'Err' as last_error
from apalis.jobs
where job_type = $1
