-- Step 5. Each customer's per-product totals over their orders that count
-- (counted, and not taken back after a cancellation).
insert into customer_product_stats (user_id, product_id, quantity, last_ordered_at)
select o.user_id,
       l.product_id,
       sum(l.quantity),
       max(o.created_at)
from orders o
join users u on u.id = o.user_id
join order_lines l on l.order_id = o.id
where o.analytics_applied_at is not null
  and o.analytics_reversed_at is null
  and u.role = 'customer'
group by o.user_id, l.product_id
