-- Step 2. Marks every uncounted order counted, except those a job has
-- claimed and not committed (skip locked): that job, blocked by step 1 until
-- we commit, adds them on top of the rebuilt figures afterwards. Orders placed
-- after this statement stay uncounted, for their own jobs.
update orders
set analytics_applied_at = now()
where id in (
    select id
    from orders
    where analytics_applied_at is null
    for no key update skip locked
)
