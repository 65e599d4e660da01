drop table shop_sales;
drop table category_sales;
drop table product_sales;
