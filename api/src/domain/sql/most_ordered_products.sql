-- Each asked customer's top 5 products by quantity; ties go to the more
-- recently ordered, then to the lower product id. One statement for any
-- number of customers: a page of orders asks for all its customers at once.
select asked.user_id, top.product_id
from unnest($1::bigint[]) as asked (user_id)
cross join lateral (
    select s.product_id, s.quantity, s.last_ordered_at
    from customer_product_stats s
    where s.user_id = asked.user_id
    order by s.quantity desc, s.last_ordered_at desc, s.product_id
    limit 5
) top
order by asked.user_id, top.quantity desc, top.last_ordered_at desc, top.product_id
