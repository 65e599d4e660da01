-- The queue's failed (or killed) jobs that a retry would put back: the job
-- with id $2, or every one of the queue when $2 is null; with their payloads,
-- which src/admin.rs checks a worker can read first.
select id, job
from apalis.jobs
where job_type = $1
  and ($2::text is null or id = $2)
  and status in ('Failed', 'Killed')
order by id
