-- As reverse_customer_products.sql, for the per-category totals (locked by
-- lock_customer_categories.sql).
with removed as (
    select o.user_id, l.category, sum(l.quantity) as quantity
    from orders o
    join order_lines l on l.order_id = o.id
    where o.id = $1
    group by o.user_id, l.category
),
emptied as (
    delete from customer_category_stats s
    using removed r
    where s.user_id = r.user_id
      and s.category = r.category
      and s.quantity = r.quantity
    returning s.user_id
),
reduced as (
    update customer_category_stats s
    set quantity = s.quantity - r.quantity,
        last_ordered_at = (
            select max(o.created_at)
            from orders o
            join order_lines l on l.order_id = o.id
            where o.user_id = r.user_id
              and l.category = r.category
              and o.id <> $1
              and o.analytics_applied_at is not null
              and o.analytics_reversed_at is null
        )
    from removed r
    where s.user_id = r.user_id
      and s.category = r.category
      and s.quantity > r.quantity
    returning s.user_id
)
select user_id from emptied
union all
select user_id from reduced
