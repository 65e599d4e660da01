-- What sold when: units, revenue and orders per quarter hour, by product, by
-- category and for the whole shop, kept by the counting run in the
-- transaction that counts the orders (jobs/sql/apply_product_figures.sql),
-- taken back out by a cancellation's reversal, recomputed by a rebuild. An
-- order falls in the quarter hour it was placed in (orders.created_at).
--
-- A quarter hour, because every time zone in use today is a whole number of
-- quarter hours from UTC (Nepal +05:45, India +05:30): an hour or a day of
-- any shop's own clock is a whole number of these buckets, daylight-saving
-- changes included. `starts_at` is `date_bin('15 minutes', created_at,
-- '2000-01-01 00:00+00')`: the same instant whatever the session's zone.
--
-- `orders` counts orders with a line of the product (of the category; any,
-- for the shop): an order of two products is one order of each and one of
-- the shop, so the shop's orders are not the sum of its products'.
create table product_sales (
    product_id bigint not null references products (id),
    starts_at timestamptz not null,
    units bigint not null,
    revenue_cents bigint not null,
    orders bigint not null,
    primary key (product_id, starts_at)
);
-- the best sellers of a recent window read every product's buckets since
create index product_sales_starts_at_idx on product_sales (starts_at, product_id)
    include (units, revenue_cents);

-- the category a line was ordered under (order_lines.category), as the
-- customers' favourite categories count it
create table category_sales (
    category text not null,
    starts_at timestamptz not null,
    units bigint not null,
    revenue_cents bigint not null,
    orders bigint not null,
    primary key (category, starts_at)
);

create table shop_sales (
    starts_at timestamptz primary key,
    units bigint not null,
    revenue_cents bigint not null,
    orders bigint not null
);

-- The history counted so far, as the counting runs would have kept it (the
-- rebuild's jobs/sql/rebuild/sales.sql, as it stands today: a migration keeps
-- its own text, whatever the rebuild becomes).
with lines as (
    select date_bin('15 minutes', o.created_at, timestamptz '2000-01-01 00:00:00+00') as starts_at,
           o.id as order_id,
           l.product_id,
           l.category,
           l.quantity::bigint as units,
           l.subtotal_cents::bigint as revenue_cents
    from orders o
    join order_lines l on l.order_id = o.id
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
group by starts_at;
