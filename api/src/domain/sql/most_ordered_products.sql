-- A customer's top products by quantity; ties go to the more recently
-- ordered, then to the lower product id.
select product_id
from customer_product_stats
where user_id = $1
order by quantity desc, last_ordered_at desc, product_id
limit 5
