-- A customer's cart lines, each at the current price of its product or variant.
select c.id,
       c.product_id,
       c.variant_id,
       c.quantity,
       coalesce(v.price_cents, p.price_cents) as unit_price_cents
from cart_lines c
join products p on p.id = c.product_id
left join product_variants v on v.id = c.variant_id
where c.user_id = $1
order by c.id
