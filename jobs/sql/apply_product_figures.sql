-- Why the bigint figures cannot overflow, in any history: a unit price is at
-- most 1e8 cents (MAX_PRICE; order_lines checks it and placement refuses a
-- legacy price above it), so total_revenue_cents <= sales_count * 1e8. Bigint
-- holds 9,223,372,036,854,775,807 cents, about 9.2e16 units of currency:
-- revenue overflows only past 9.2e10 units sold at the maximum price, hundreds
-- of years of world GDP (~1e14 a year). sales_count overflows only past 9.2e18
-- units, 9.3e14 orders of 9,900 units (100 lines of 99): 29 years at a million
-- orders a second (this machine does 1e3 to 1e4). A reversal only undoes.
--
-- One statement for every product of the batch, whatever the number of lines
-- (locked by lock_products.sql), that also adds the batch's orders to the
-- sales per quarter hour of their products, their categories and the shop
-- (migration 000013 says what the buckets are; an order of a day rolled up
-- already counts in that day: sales_bucket, migration 000014). $1 holds
-- distinct orders (a claim's, or the one a reversal takes back). $2 is 1 to
-- count the orders in, -1 to take a cancelled order back out: the reversal is
-- this statement's exact inverse.
--
-- One statement, because the figures and the buckets are written under the
-- same product locks, which every run of the same products waits for: a
-- separate statement read the batch's lines again and cost the drain a fifth
-- of its rate (BENCHMARKS.md, Sales over time). The bucket rows are upserted
-- in key order, so two runs that share buckets (every run of the same quarter
-- hour shares the shop's) wait for each other instead of deadlocking; the
-- reversal writes them with this same statement, before it locks the
-- customers' totals, as counting does.
--
-- The lines are read one order at a time, through the first column of
-- order_lines' primary key: a lateral subquery that aggregates, or that ends
-- in `offset 0` as here, is never merged into the join, so PostgreSQL has no
-- other plan to choose, whatever its statistics say or lack. Without any (a
-- table never analyzed, or a burst that outran autovacuum) it takes an order
-- to have 0.5% of all lines, and given `order_id = any ($1)` for 500 orders,
-- nine in ten of them: it read every line instead (0.5-0.9 s a run with 4.5
-- million lines, against a few ms). The same holds for every statement that
-- reads the batch's lines.
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
        -- each line as it is (grouping them per order cost a sort per order;
        -- the groups below add them up)
        offset 0
    ) l
),
by_product as (
    -- lines of the same product (say two sizes) count together, and their
    -- order once
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
),
by_shop as (
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
)
update products p
set sales_count = p.sales_count + $2::bigint * s.units,
    total_revenue_cents = p.total_revenue_cents + $2::bigint * s.revenue_cents,
    rating = product_rating(p.sales_count + $2::bigint * s.units),
    updated_at = now()
from (
    select product_id,
           sum(units)::bigint as units,
           sum(revenue_cents)::bigint as revenue_cents
    from lines
    group by product_id
) s
where p.id = s.product_id
returning p.id
