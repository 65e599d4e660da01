-- Step 9. The sales per quarter hour (per day, before the rollup's
-- horizon) of every product, category and the shop, over the orders that
-- count (counted, and not taken back after a cancellation): what
-- apply_product_figures.sql keeps run by run.
with lines as (
    select sales_bucket(o.created_at, r.days_before, r.time_zone) as starts_at,
           o.id as order_id,
           l.product_id,
           l.category,
           l.quantity::bigint as units,
           l.subtotal_cents::bigint as revenue_cents
    from orders o
    join order_lines l on l.order_id = o.id
    cross join sales_rollup r
    where o.analytics_applied_at is not null
      and o.analytics_reversed_at is null
),
by_product as (
    insert into product_sales (product_id, starts_at, units, revenue_cents, orders)
    select product_id, starts_at, sum(units), sum(revenue_cents), count(distinct order_id)
    from lines
    group by product_id, starts_at
),
by_category as (
    insert into category_sales (category, starts_at, units, revenue_cents, orders)
    select category, starts_at, sum(units), sum(revenue_cents), count(distinct order_id)
    from lines
    group by category, starts_at
)
insert into shop_sales (starts_at, units, revenue_cents, orders)
select starts_at, sum(units), sum(revenue_cents), count(distinct order_id)
from lines
group by starts_at
