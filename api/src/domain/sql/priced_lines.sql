-- The body of a CTE, or a select after the caller's `with`: each line of the
-- caller's CTE `requested` (slot, line_no, product_id, variant_id) priced
-- now, and what stops it from being ordered (`problem`, null when nothing
-- does). A slot is an order of a batch (place_orders.sql), its lines
-- numbered from 1.
-- The one place the rules of an orderable line are written: pricing.rs words
-- each problem as its error, and place_orders.sql writes an order only when
-- none of its lines has one. Checked in this order:
--   no_product       the product does not exist
--   no_variant       the variant does not exist
--   foreign_variant  the variant is another product's
--   unavailable      the product is not available
--   price_unbounded  the price is outside 0.00 to the highest price (a row
--                    older than the bound, which the database checks only on
--                    rows written since: NOT VALID)
select r.slot,
       r.line_no,
       r.product_id as requested_product_id,
       r.variant_id as requested_variant_id,
       p.id as product_id,
       p.name as product_name,
       p.category,
       v.id as variant_id,
       v.name as variant_name,
       case when r.variant_id is null then p.price_cents else v.price_cents end
           as unit_price_cents,
       case
           when p.id is null then 'no_product'
           when r.variant_id is not null and v.id is null then 'no_variant'
           when v.product_id <> p.id then 'foreign_variant'
           when not p.available then 'unavailable'
           when (case when r.variant_id is null then p.price_cents else v.price_cents end)
                not between 0 and {max_price_cents} then 'price_unbounded'
       end as problem
from requested r
left join products p on p.id = r.product_id
left join product_variants v on v.id = r.variant_id
