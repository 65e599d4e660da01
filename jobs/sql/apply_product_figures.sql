-- Why the bigint figures cannot overflow, in any history: a unit price is at
-- most 1e8 cents (MAX_PRICE; order_lines checks it and placement refuses a
-- legacy price above it), so total_revenue_cents <= sales_count * 1e8. Bigint
-- holds 9,223,372,036,854,775,807 cents, about 9.2e16 units of currency:
-- revenue overflows only past 9.2e10 units sold at the maximum price, hundreds
-- of years of world GDP (~1e14 a year). sales_count overflows only past 9.2e18
-- units, 9.3e14 orders of 9,900 units (100 lines of 99): 29 years at a million
-- orders a second (this machine does 1e3 to 1e4). A reversal only undoes.
--
-- One statement for every product of the batch, whatever the number of lines
-- (locked by lock_products.sql). $1 holds distinct orders (a claim's, or the
-- one a reversal takes back). $2 is 1 to count the orders in, -1 to take a
-- cancelled order back out: the reversal is this statement's exact inverse.
--
-- The lines are read one order at a time, through the first column of
-- order_lines' primary key: a lateral subquery that aggregates is never
-- merged into the join, so PostgreSQL has no other plan to choose, whatever
-- its statistics say or lack. Without any (a table never analyzed, or a burst
-- that outran autovacuum) it takes an order to have 0.5% of all lines, and
-- given `order_id = any ($1)` for 500 orders, nine in ten of them: it read
-- every line instead (0.5-0.9 s a run with 4.5 million lines, against a few
-- ms). The same holds for every statement that reads the batch's lines.
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
