-- Step 0. One rebuild at a time, across every process on the database: a
-- second one finds this lock taken and stops at once, instead of waiting
-- behind the first for the figures' lock and then doing its work again.
select pg_try_advisory_xact_lock($1) as free
