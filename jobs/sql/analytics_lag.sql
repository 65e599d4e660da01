-- How far counting is behind (`admin::lag`, for `/metrics`): seconds since
-- the oldest placed order that no job has counted yet was placed (0 when
-- none waits; a cancelled order never waits to be counted),
-- and how many orders are held back because counting them failed. A held-back
-- order is not lag: it waits for an operator, and is counted apart so that
-- one failing order neither hides nor inflates the others' lag. Both come
-- from partial indexes.
select coalesce((
           select extract(epoch from now() - created_at)
           from orders
           where analytics_applied_at is null
             and status = 'placed'
             and analytics_held_back_at is null
           order by id
           limit 1
       ), 0)::float8 as lag_seconds,
       (
           select count(*)
           from orders
           where analytics_held_back_at is not null
             and analytics_applied_at is null
             and status = 'placed'
       ) as held_back
