-- Each asked customer's top 5 products, best first (ranked by the view).
-- One statement for any number of customers: a page of orders asks for all
-- its customers at once.
select user_id, product_id
from customer_top_products
where user_id = any ($1::bigint[])
order by user_id, rank
