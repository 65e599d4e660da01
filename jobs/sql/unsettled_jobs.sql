-- Jobs of the queue that still have work to do: waiting, taken by a worker,
-- running, or failed with attempts left (apalis will run them again). None
-- means every order a job stands for is settled: counted, taken back out,
-- held back, or left by a job that gave up, for an operator to retry.
select count(*)
from apalis.jobs
where job_type = $1
  and (status in ('Pending', 'Queued', 'Running')
       or (status = 'Failed' and attempts < max_attempts))
