drop function product_rating(bigint);
drop table product_variants;
drop table products;
