-- Each asked customer's top 3 categories by quantity; ties go to the more
-- recently ordered, then alphabetically. One statement for any number of
-- customers.
select asked.user_id, top.category
from unnest($1::bigint[]) as asked (user_id)
cross join lateral (
    select s.category, s.quantity, s.last_ordered_at
    from customer_category_stats s
    where s.user_id = asked.user_id
    order by s.quantity desc, s.last_ordered_at desc, s.category
    limit 3
) top
order by asked.user_id, top.quantity desc, top.last_ordered_at desc, top.category
