-- What each requested line costs now, in request order; a missing product or
-- variant comes back as nulls so the caller can say which one. The lines come
-- as one JSON array of {product_id, variant_id}: variant_id may be null.
select l.line_no::integer as line_no,
       l.product_id as requested_product_id,
       l.variant_id as requested_variant_id,
       p.id as product_id,
       p.name as product_name,
       p.category,
       p.price_cents as product_price_cents,
       p.available,
       v.id as variant_id,
       v.product_id as variant_product_id,
       v.name as variant_name,
       v.price_cents as variant_price_cents
from rows from (jsonb_to_recordset($1::jsonb) as (product_id bigint, variant_id bigint))
    with ordinality as l (product_id, variant_id, line_no)
left join products p on p.id = l.product_id
left join product_variants v on v.id = l.variant_id
order by l.line_no
