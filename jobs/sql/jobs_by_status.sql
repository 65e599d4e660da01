-- How many post-order jobs are in each status now.
select status, count(*) as jobs
from apalis.jobs
where job_type = $1
group by status
