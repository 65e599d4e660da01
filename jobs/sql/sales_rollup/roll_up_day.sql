-- Rolls the quarter hours in [$1, $2) (one day of zone $3, from
-- next_day.sql) into one row per product, category and the shop, keyed by
-- the day's start, then moves the horizon past it: from here an order of
-- that day counts in its day (sales_bucket, migration 000014). The sums are
-- unchanged, so every figure still equals its buckets.
--
-- A day's key is its first quarter hour's: the delete and the insert of one
-- statement meet no conflict over it. A row of the day already rolled (a
-- zone changed since) takes the sums in.
with moved_products as (
    delete from product_sales
    where starts_at >= $1 and starts_at < $2
    returning product_id, starts_at, units, revenue_cents, orders
),
rolled_products as (
    insert into product_sales as s (product_id, starts_at, units, revenue_cents, orders)
    select product_id, date_trunc('day', starts_at, $3), sum(units), sum(revenue_cents), sum(orders)
    from moved_products
    group by 1, 2
    order by 1, 2
    on conflict (product_id, starts_at) do update
    set units = s.units + excluded.units,
        revenue_cents = s.revenue_cents + excluded.revenue_cents,
        orders = s.orders + excluded.orders
),
moved_categories as (
    delete from category_sales
    where starts_at >= $1 and starts_at < $2
    returning category, starts_at, units, revenue_cents, orders
),
rolled_categories as (
    insert into category_sales as s (category, starts_at, units, revenue_cents, orders)
    select category, date_trunc('day', starts_at, $3), sum(units), sum(revenue_cents), sum(orders)
    from moved_categories
    group by 1, 2
    order by 1, 2
    on conflict (category, starts_at) do update
    set units = s.units + excluded.units,
        revenue_cents = s.revenue_cents + excluded.revenue_cents,
        orders = s.orders + excluded.orders
),
moved_shop as (
    delete from shop_sales
    where starts_at >= $1 and starts_at < $2
    returning starts_at, units, revenue_cents, orders
),
rolled_shop as (
    insert into shop_sales as s (starts_at, units, revenue_cents, orders)
    select date_trunc('day', starts_at, $3), sum(units), sum(revenue_cents), sum(orders)
    from moved_shop
    group by 1
    on conflict (starts_at) do update
    set units = s.units + excluded.units,
        revenue_cents = s.revenue_cents + excluded.revenue_cents,
        orders = s.orders + excluded.orders
)
update sales_rollup
set days_before = $2,
    time_zone = $3
