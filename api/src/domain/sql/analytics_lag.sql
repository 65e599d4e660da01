-- Seconds since the oldest placed order that no job has counted yet was
-- placed (0 when none waits; a cancelled order never waits to be counted);
-- the partial index finds it at once.
select coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as lag_seconds
from (
    select created_at
    from orders
    where analytics_applied_at is null
      and status = 'placed'
    order by id
    limit 1
) oldest
