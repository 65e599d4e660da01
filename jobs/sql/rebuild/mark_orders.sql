-- Step 2. Settles every order no job has settled: placed orders not counted
-- yet are counted, cancelled orders not taken back yet are marked taken back
-- (steps 3 to 7 leave them out, counted before or not). Held-back orders stay
-- out, for their jobs: counting them is what failed. Orders a cancellation
-- holds and has not committed are skipped (skip locked): its job, blocked by
-- step 1 until we commit, settles them on top of the rebuilt figures
-- afterwards. Orders placed after this statement stay for their jobs.
update orders
set analytics_applied_at = case when status = 'placed' then now() else analytics_applied_at end,
    analytics_reversed_at = case when status = 'cancelled' then now() end,
    analytics_held_back_at = null,
    analytics_failure = null
where id in (
    select id
    from orders
    where (status = 'placed' and analytics_applied_at is null and analytics_held_back_at is null)
       or (status = 'cancelled' and analytics_reversed_at is null)
    for no key update skip locked
)
