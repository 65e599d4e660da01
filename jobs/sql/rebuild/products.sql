-- Step 3. Every product's figures from the lines of the orders that count
-- (counted, and not taken back after a cancellation); a product nobody
-- ordered goes back to zero. Only changed rows are written.
with sold as (
    select l.product_id,
           sum(l.quantity)::bigint as units,
           sum(l.subtotal_cents)::bigint as revenue_cents
    from order_lines l
    join orders o on o.id = l.order_id
    where o.analytics_applied_at is not null
      and o.analytics_reversed_at is null
    group by l.product_id
),
figures as (
    select p.id,
           coalesce(s.units, 0) as units,
           coalesce(s.revenue_cents, 0) as revenue_cents
    from products p
    left join sold s on s.product_id = p.id
)
update products p
set sales_count = f.units,
    total_revenue_cents = f.revenue_cents,
    rating = product_rating(f.units),
    updated_at = now()
from figures f
where p.id = f.id
  and (p.sales_count, p.total_revenue_cents, p.rating)
      is distinct from (f.units, f.revenue_cents, product_rating(f.units))
