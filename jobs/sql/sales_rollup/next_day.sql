-- The next day to roll up, in zone $2: the day of the oldest quarter hour
-- kept, when that whole day is older than $1 (the retention of quarter
-- hours); no row otherwise. Runs under the figures' lock alone
-- (../rebuild/lock_figures.sql), so no run counts an order meanwhile.
--
-- Every quarter hour with sales of a product or a category has the shop's
-- row too (apply_product_figures.sql writes all three), so the shop's key
-- finds it.
-- `rolled_from` is where the quarter hours start: the day's rows before it
-- are rolled already (a day can start before the horizon when the zone was
-- changed since).
with oldest as (
    select r.days_before,
           date_trunc('day', min(s.starts_at), $2) as starts_at
    from sales_rollup r
    join shop_sales s on s.starts_at >= r.days_before
    group by r.days_before
)
select greatest(starts_at, days_before) as rolled_from,
       (starts_at at time zone $2 + interval '1 day') at time zone $2 as ends_at
from oldest
where (starts_at at time zone $2 + interval '1 day') at time zone $2 <= $1
