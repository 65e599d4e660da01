drop table customer_category_stats;
drop table customer_product_stats;
