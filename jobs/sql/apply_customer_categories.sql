-- Adds the batch's quantities to each customer's per-category totals, from
-- the category each line was ordered under. Customers only, as above.
insert into customer_category_stats as stats (user_id, category, quantity, last_ordered_at)
select o.user_id,
       l.category,
       sum(l.quantity),
       max(o.created_at)
from orders o
join users u on u.id = o.user_id
join order_lines l on l.order_id = o.id
where o.id = any ($1::bigint[])
  and u.role = 'customer'
group by o.user_id, l.category
-- key order, as for the product totals
order by o.user_id, l.category
on conflict (user_id, category) do update
set quantity = stats.quantity + excluded.quantity,
    last_ordered_at = greatest(stats.last_ordered_at, excluded.last_ordered_at)
returning user_id
