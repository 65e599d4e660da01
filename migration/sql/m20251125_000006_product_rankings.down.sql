drop index products_created_at_idx;
drop index products_rating_idx;
drop index products_revenue_idx;
drop index products_sales_count_idx;
