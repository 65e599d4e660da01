-- Adds the orders of $1 (distinct) to the sales per quarter hour of their
-- products, their categories and the shop ($2 = 1), or takes a cancelled
-- order back out ($2 = -1): the exact inverse. One statement whatever the
-- number of orders and lines (migration 000013 says what the buckets are).
-- An order of a day rolled up already counts in that day (sales_bucket,
-- migration 000014).
--
-- Rows are upserted in key order, so two runs that share buckets (every run
-- of the same quarter hour shares the shop's) wait for each other instead of
-- deadlocking; the products' rows are locked already (lock_products.sql).
-- The lines are read one order at a time, through order_lines' key
-- (apply_product_figures.sql says why), each as it is: grouping them per
-- order first cost a sort per order, a sixth of the statement.
with lines as (
    select sales_bucket(o.created_at, r.days_before, r.time_zone) as starts_at,
           o.id as order_id,
           l.product_id,
           l.category,
           l.units,
           l.revenue_cents
    from unnest($1::bigint[]) as b (order_id)
    join orders o on o.id = b.order_id
    cross join sales_rollup r
    cross join lateral (
        select product_id,
               category,
               quantity::bigint as units,
               subtotal_cents::bigint as revenue_cents
        from order_lines
        where order_id = b.order_id
        -- kept a subquery (never merged into the join), as the grouping of
        -- apply_product_figures.sql keeps its own: the lines of a product
        -- add up in the groups below, and an order counts once there
        offset 0
    ) l
),
by_product as (
    insert into product_sales as s (product_id, starts_at, units, revenue_cents, orders)
    select product_id,
           starts_at,
           $2::bigint * sum(units),
           $2::bigint * sum(revenue_cents),
           $2::bigint * count(distinct order_id)
    from lines
    group by product_id, starts_at
    order by product_id, starts_at
    on conflict (product_id, starts_at) do update
    set units = s.units + excluded.units,
        revenue_cents = s.revenue_cents + excluded.revenue_cents,
        orders = s.orders + excluded.orders
),
by_category as (
    insert into category_sales as s (category, starts_at, units, revenue_cents, orders)
    select category,
           starts_at,
           $2::bigint * sum(units),
           $2::bigint * sum(revenue_cents),
           $2::bigint * count(distinct order_id)
    from lines
    group by category, starts_at
    order by category, starts_at
    on conflict (category, starts_at) do update
    set units = s.units + excluded.units,
        revenue_cents = s.revenue_cents + excluded.revenue_cents,
        orders = s.orders + excluded.orders
)
insert into shop_sales as s (starts_at, units, revenue_cents, orders)
select starts_at,
       $2::bigint * sum(units),
       $2::bigint * sum(revenue_cents),
       $2::bigint * count(distinct order_id)
from lines
group by starts_at
order by starts_at
on conflict (starts_at) do update
set units = s.units + excluded.units,
    revenue_cents = s.revenue_cents + excluded.revenue_cents,
    orders = s.orders + excluded.orders
