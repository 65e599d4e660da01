-- What sells now: the products sold since $1 (the start of a quarter hour),
-- most units first, ties to the newer product (higher id) as in every
-- ranking; of category $2 when it is not null; after the position ($3 units,
-- $4 id) when $3 is not null; at most $5 rows. A product whose sales in the
-- window were all taken back (cancelled) is not in it.
--
-- Reads the window's buckets by product_sales_starts_at_idx, which holds the
-- units (an index-only scan): a day's window of a shop of 200 products is at
-- most 19,200 entries, a week's 134,400.
with recent as (
    select product_id, sum(units)::bigint as window_units
    from product_sales
    where starts_at >= $1
    group by product_id
    having sum(units) > 0
)
select p.*, r.window_units
from recent r
join products p on p.id = r.product_id
where ($2::text is null or p.category = $2)
  and ($3::bigint is null or (r.window_units, p.id) < ($3, $4::bigint))
order by r.window_units desc, p.id desc
limit $5
