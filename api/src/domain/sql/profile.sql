-- `me`: the caller's account with their preferences, in one round trip: a
-- row per product of the caller's top 5 (ranked by the view, as for any
-- customer), best first, each with the account and the top 3 categories;
-- one row without a product when the caller has none. The account and its
-- categories are read once (materialized), not once per product row.
--
-- $1 the account, $2 the token version the caller's token names: no row
-- when the account is gone or its tokens were revoked since (a changed
-- password or role), which is this statement's check of the token.
with account as materialized (
    select u.*,
           array(
               select t.category
               from customer_top_categories t
               where t.user_id = u.id
               order by t.rank
           ) as favorite_categories
    from users u
    where u.id = $1
      and u.token_version = $2
)
select account.*,
       p.id as product_id,
       p.name as product_name,
       p.description as product_description,
       p.category as product_category,
       p.price_cents as product_price_cents,
       p.available as product_available,
       p.sales_count as product_sales_count,
       p.total_revenue_cents as product_total_revenue_cents,
       p.rating as product_rating,
       p.created_at as product_created_at,
       p.updated_at as product_updated_at
from account
left join customer_top_products t on t.user_id = account.id
left join products p on p.id = t.product_id
order by t.rank
