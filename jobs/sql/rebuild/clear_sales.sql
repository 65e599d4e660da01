-- Step 8. The sales per quarter hour are rebuilt whole (step 9).
with products as (
    delete from product_sales
),
categories as (
    delete from category_sales
)
delete from shop_sales
