-- As lock_customer_products.sql, for the per-category totals, which a batch
-- of other orders may share with this one without sharing a product.
select s.category
from customer_category_stats s
join orders o on o.user_id = s.user_id
where o.id = $1
  and s.category in (select category from order_lines where order_id = $1)
order by s.user_id, s.category
for no key update of s
