-- Step 4. Customer product totals are rebuilt whole (step 5).
delete from customer_product_stats
