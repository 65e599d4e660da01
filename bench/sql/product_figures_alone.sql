-- The counting run's product statement as it was before the sales per
-- quarter hour (at 7890c3e, issue #28): the products' figures alone. The
-- bench's straight SQL runs it in place of jobs/sql/apply_product_figures.sql
-- to show what the buckets cost the drain, side by side in one run. A
-- baseline: it stays as it was when the job changes.
with sold as (
    -- lines of the same product (say two sizes) count together
    select l.product_id,
           sum(l.units)::bigint as units,
           sum(l.revenue_cents)::bigint as revenue_cents
    from unnest($1::bigint[]) as b (order_id)
    cross join lateral (
        select product_id,
               sum(quantity) as units,
               sum(subtotal_cents) as revenue_cents
        from order_lines
        where order_id = b.order_id
        group by product_id
    ) l
    group by l.product_id
)
update products p
set sales_count = p.sales_count + $2::bigint * s.units,
    total_revenue_cents = p.total_revenue_cents + $2::bigint * s.revenue_cents,
    rating = product_rating(p.sales_count + $2::bigint * s.units),
    updated_at = now()
from sold s
where p.id = s.product_id
returning p.id
