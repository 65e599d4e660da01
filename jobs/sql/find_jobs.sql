-- The queue's jobs of one id ($2) or of some keys ($3: an order's two jobs,
-- see src/enqueue.rs). Both columns are indexed (the primary key, apalis's
-- unique key per job type).
{job_summaries}
  and (id = $2 or idempotency_key = any ($3::text[]))
order by run_at, id
