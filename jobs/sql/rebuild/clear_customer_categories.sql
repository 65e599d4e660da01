-- Step 6. Customer category totals are rebuilt whole (step 7).
delete from customer_category_stats
