-- Adds the batch's quantities to each customer's per-product totals. Only
-- customers get preferences: an admin's order counts for products only.
insert into customer_product_stats as stats (user_id, product_id, quantity, last_ordered_at)
select o.user_id,
       l.product_id,
       sum(l.quantity),
       max(o.created_at)
from orders o
join users u on u.id = o.user_id
join order_lines l on l.order_id = o.id
where o.id = any ($1::bigint[])
  and u.role = 'customer'
group by o.user_id, l.product_id
-- rows are upserted, and so locked, in key order: no deadlock between batches
order by o.user_id, l.product_id
on conflict (user_id, product_id) do update
set quantity = stats.quantity + excluded.quantity,
    last_ordered_at = greatest(stats.last_ordered_at, excluded.last_ordered_at)
returning user_id
