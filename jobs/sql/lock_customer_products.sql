-- Before a reversal changes them: the order's customer's per-product totals
-- for the products it had, in key order (the order every upsert takes them
-- in). A statement of its own, so the statement that recomputes their
-- last_ordered_at sees every run that changed them before us committed.
select s.product_id
from customer_product_stats s
join orders o on o.user_id = s.user_id
where o.id = $1
  and s.product_id in (select product_id from order_lines where order_id = $1)
order by s.user_id, s.product_id
for no key update of s
