-- Each customer's top 5 products and top 3 categories by quantity, ranked in
-- one place for every read that shows them (a page of orders' customers,
-- `me` with its account): ties go to the more recently ordered, then to the
-- lower product id, or alphabetically. Read by customer (`where user_id =
-- ...`): the filter reaches users' primary key, and each customer's totals
-- are read through theirs, at most 5 (or 3) rows kept: plans that need no
-- statistics, and a join to products that goes through its key.
create view customer_top_products as
select u.id as user_id, top.product_id, top.rank
from users u
cross join lateral (
    select s.product_id,
           row_number() over (
               order by s.quantity desc, s.last_ordered_at desc, s.product_id
           ) as rank
    from customer_product_stats s
    where s.user_id = u.id
    order by rank
    limit 5
) top;

create view customer_top_categories as
select u.id as user_id, top.category, top.rank
from users u
cross join lateral (
    select s.category,
           row_number() over (
               order by s.quantity desc, s.last_ordered_at desc, s.category
           ) as rank
    from customer_category_stats s
    where s.user_id = u.id
    order by rank
    limit 3
) top;
