-- A customer's top categories by quantity; ties go to the more recently
-- ordered, then alphabetically.
select category
from customer_category_stats
where user_id = $1
order by quantity desc, last_ordered_at desc, category
limit 3
