-- Holds back an order that failed to be counted on its own, with the error:
-- no other run's batch, sweep or rebuild takes it from now on, so it cannot
-- stop their orders' figures. Its own job still tries it; an operator's retry
-- of that job releases it (retry_jobs.sql). A run that counted or cancelled
-- it meanwhile wins: nothing is held back then.
update orders
set analytics_held_back_at = coalesce(analytics_held_back_at, now()),
    analytics_failure = $2
where id = $1
  and analytics_applied_at is null
  and status = 'placed'
returning order_number
