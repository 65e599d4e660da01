-- The jobs of the queue ($1) that the worker named $2 held: fetched
-- (Queued) or running, and not finished.
select id, job
from apalis.jobs
where job_type = $1
  and lock_by = $2
  and status in ('Queued', 'Running')
