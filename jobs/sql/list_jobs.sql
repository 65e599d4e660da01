-- The queue's jobs, newest first, optionally of one status ($2).
{job_summaries}
  and ($2::text is null or status = $2)
order by run_at desc, id desc
limit $3
