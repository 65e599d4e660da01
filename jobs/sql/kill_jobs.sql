-- Kills the jobs of the queue ($1) with the ids $2 that are still held
-- (Queued or Running), with $3 as their last error, as apalis writes one:
-- no fetch takes a killed job, and an operator's retry is what brings one
-- back.
update apalis.jobs
set status = 'Killed',
    done_at = now(),
    lock_by = null,
    last_result = jsonb_build_object('Err', $3::text)
where job_type = $1
  and id = any ($2::text[])
  and status in ('Queued', 'Running')
returning id
