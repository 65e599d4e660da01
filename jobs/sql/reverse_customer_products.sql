-- Takes a cancelled order's quantities back out of its customer's
-- per-product totals (locked by lock_customer_products.sql). A total that
-- reaches zero goes: the customer has no counted order of that product left.
-- The others take the latest of the customer's orders that still count as
-- last_ordered_at, so ties in mostOrderedItems rank as if the cancelled order
-- had never been placed. An admin's order has no totals: nothing matches.
with removed as (
    select o.user_id, l.product_id, sum(l.quantity) as quantity
    from orders o
    join order_lines l on l.order_id = o.id
    where o.id = $1
    group by o.user_id, l.product_id
),
emptied as (
    delete from customer_product_stats s
    using removed r
    where s.user_id = r.user_id
      and s.product_id = r.product_id
      and s.quantity = r.quantity
    returning s.user_id
),
reduced as (
    update customer_product_stats s
    set quantity = s.quantity - r.quantity,
        last_ordered_at = (
            select max(o.created_at)
            from orders o
            join order_lines l on l.order_id = o.id
            where o.user_id = r.user_id
              and l.product_id = r.product_id
              and o.id <> $1
              and o.analytics_applied_at is not null
              and o.analytics_reversed_at is null
        )
    from removed r
    where s.user_id = r.user_id
      and s.product_id = r.product_id
      and s.quantity > r.quantity
    returning s.user_id
)
select user_id from emptied
union all
select user_id from reduced
