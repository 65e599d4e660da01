-- Adds the batch's quantities to each customer's per-product totals. Only
-- customers get preferences: an admin's order counts for products only.
-- The batch's orders ($1, distinct) through the primary key, and each one's
-- lines through order_lines' (as apply_product_figures.sql says why).
insert into customer_product_stats as stats (user_id, product_id, quantity, last_ordered_at)
select o.user_id,
       l.product_id,
       sum(l.quantity)::bigint,
       max(o.created_at)
from unnest($1::bigint[]) as b (order_id)
join orders o on o.id = b.order_id
join users u on u.id = o.user_id
cross join lateral (
    select product_id, sum(quantity) as quantity
    from order_lines
    where order_id = b.order_id
    group by product_id
) l
where u.role = 'customer'
group by o.user_id, l.product_id
-- rows are upserted, and so locked, in key order: no deadlock between batches
order by o.user_id, l.product_id
on conflict (user_id, product_id) do update
set quantity = stats.quantity + excluded.quantity,
    last_ordered_at = greatest(stats.last_ordered_at, excluded.last_ordered_at)
returning user_id
