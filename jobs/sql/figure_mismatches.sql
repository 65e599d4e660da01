-- How far the figures are from a recount over the lines of orders that stand
-- (placed, not cancelled): orders no job has settled yet (placed and not
-- counted, or cancelled and not taken back), products whose figures are off,
-- customers' product and category totals that are off (customers only), and
-- sales per quarter hour (per day, before the rollup's horizon) that are
-- off (a bucket left at zero by a reversal counts as none). 0 when every figure is what counting each standing order
-- once gives; tests and the benchmark check it.
with lines as (
    select o.id as order_id, o.user_id, u.role, o.created_at, l.product_id, l.category,
           l.quantity, l.subtotal_cents,
           sales_bucket(o.created_at, r.days_before, r.time_zone) as starts_at
    from orders o
    join order_lines l on l.order_id = o.id
    join users u on u.id = o.user_id
    cross join sales_rollup r
    where o.status = 'placed'
),
by_product as (
    select product_id, sum(quantity) as units, sum(subtotal_cents) as revenue
    from lines
    group by product_id
),
by_customer_product as (
    select user_id, product_id, sum(quantity) as quantity, max(created_at) as last
    from lines
    where role = 'customer'
    group by 1, 2
),
product_buckets as (
    select product_id, starts_at, sum(quantity) as units, sum(subtotal_cents) as revenue,
           count(distinct order_id) as orders
    from lines
    group by 1, 2
),
category_buckets as (
    select category, starts_at, sum(quantity) as units, sum(subtotal_cents) as revenue,
           count(distinct order_id) as orders
    from lines
    group by 1, 2
),
shop_buckets as (
    select starts_at, sum(quantity) as units, sum(subtotal_cents) as revenue,
           count(distinct order_id) as orders
    from lines
    group by 1
),
by_customer_category as (
    select user_id, category, sum(quantity) as quantity, max(created_at) as last
    from lines
    where role = 'customer'
    group by 1, 2
)
select (select count(*)
        from orders
        where (status = 'placed' and analytics_applied_at is null)
           or (status = 'cancelled' and analytics_reversed_at is null))
     + (select count(*)
        from products p
        left join by_product s on s.product_id = p.id
        where p.sales_count <> coalesce(s.units, 0)
           or p.total_revenue_cents <> coalesce(s.revenue, 0)
           or p.rating <> product_rating(coalesce(s.units, 0)))
     + (select count(*)
        from customer_product_stats c
        full join by_customer_product s using (user_id, product_id)
        where c.quantity is distinct from s.quantity
           or c.last_ordered_at is distinct from s.last)
     + (select count(*)
        from customer_category_stats c
        full join by_customer_category s using (user_id, category)
        where c.quantity is distinct from s.quantity
           or c.last_ordered_at is distinct from s.last)
     + (select count(*)
        from product_sales k
        full join product_buckets s using (product_id, starts_at)
        where (coalesce(k.units, 0), coalesce(k.revenue_cents, 0), coalesce(k.orders, 0))
           <> (coalesce(s.units, 0), coalesce(s.revenue, 0), coalesce(s.orders, 0)))
     + (select count(*)
        from category_sales k
        full join category_buckets s using (category, starts_at)
        where (coalesce(k.units, 0), coalesce(k.revenue_cents, 0), coalesce(k.orders, 0))
           <> (coalesce(s.units, 0), coalesce(s.revenue, 0), coalesce(s.orders, 0)))
     + (select count(*)
        from shop_sales k
        full join shop_buckets s using (starts_at)
        where (coalesce(k.units, 0), coalesce(k.revenue_cents, 0), coalesce(k.orders, 0))
           <> (coalesce(s.units, 0), coalesce(s.revenue, 0), coalesce(s.orders, 0)))
       as mismatches
