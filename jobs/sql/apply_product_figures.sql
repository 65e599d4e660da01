-- One statement for every product of the batch, whatever the number of lines
-- (locked by lock_products.sql). $2 is 1 to count the orders in, -1 to take a
-- cancelled order back out: the reversal is this statement's exact inverse.
with sold as (
    -- lines of the same product (say two sizes) count together
    select product_id,
           sum(quantity)::bigint as units,
           sum(subtotal_cents)::bigint as revenue_cents
    from order_lines
    where order_id = any ($1::bigint[])
    group by product_id
)
update products p
set sales_count = p.sales_count + $2::bigint * s.units,
    total_revenue_cents = p.total_revenue_cents + $2::bigint * s.revenue_cents,
    rating = product_rating(p.sales_count + $2::bigint * s.units),
    updated_at = now()
from sold s
where p.id = s.product_id
returning p.id
