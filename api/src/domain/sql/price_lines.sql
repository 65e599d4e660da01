-- What each requested line costs now, in request order, and what stops it
-- from being ordered (see priced_lines.sql, filled in below). The lines come
-- as one JSON array of {product_id, variant_id}: variant_id may be null.
-- They are one request: slot 0.
with requested as (
    select 0 as slot, l.line_no::integer as line_no, l.product_id, l.variant_id
    from rows from (jsonb_to_recordset($1::jsonb) as (product_id bigint, variant_id bigint))
        with ordinality as l (product_id, variant_id, line_no)
)
{priced_lines}
order by line_no
