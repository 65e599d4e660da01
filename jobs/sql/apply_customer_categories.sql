-- Adds the batch's quantities to each customer's per-category totals, from
-- the category each line was ordered under. Customers only, as above; the
-- orders and their lines read as there.
insert into customer_category_stats as stats (user_id, category, quantity, last_ordered_at)
select o.user_id,
       l.category,
       sum(l.quantity)::bigint,
       max(o.created_at)
from unnest($1::bigint[]) as b (order_id)
join orders o on o.id = b.order_id
join users u on u.id = o.user_id
cross join lateral (
    select category, sum(quantity) as quantity
    from order_lines
    where order_id = b.order_id
    group by category
) l
where u.role = 'customer'
group by o.user_id, l.category
-- key order, as for the product totals
order by o.user_id, l.category
on conflict (user_id, category) do update
set quantity = stats.quantity + excluded.quantity,
    last_ordered_at = greatest(stats.last_ordered_at, excluded.last_ordered_at)
returning user_id
