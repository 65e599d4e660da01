-- Each asked customer's top 3 categories, best first (ranked by the view).
-- One statement for any number of customers.
select user_id, category
from customer_top_categories
where user_id = any ($1::bigint[])
order by user_id, rank
