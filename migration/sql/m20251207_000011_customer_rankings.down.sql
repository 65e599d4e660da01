drop view customer_top_categories;
drop view customer_top_products;
