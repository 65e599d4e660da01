-- Places an order in one statement, so in one transaction: the order, its
-- lines, its post-order job and (for a cart order) the emptied cart commit
-- together or not at all. The lines come as one JSON array of priced lines.
-- A replayed idempotency key inserts no order, and then every step below,
-- which reads new_order, does nothing either. The job's row is the
-- jobs crate's, filled in where new_job is (jobs::enqueue::enqueue_sql,
-- reading $6 and $7).
with new_order as (
    insert into orders (user_id, total_cents, idempotency_key)
    values ($1, $2, $3)
    on conflict (user_id, idempotency_key) do nothing
    returning id, order_number, user_id, status, total_cents, idempotency_key,
              created_at, analytics_applied_at, cancelled_at, analytics_reversed_at,
              analytics_held_back_at, analytics_failure
),
new_lines as (
    insert into order_lines (order_id, line_no, product_id, variant_id, product_name,
                             variant_name, category, unit_price_cents, quantity, subtotal_cents)
    select o.id,
           l.line_no,
           l.product_id,
           l.variant_id,
           l.product_name,
           l.variant_name,
           l.category,
           l.unit_price_cents,
           l.quantity,
           l.unit_price_cents * l.quantity
    from new_order o
    cross join rows from (
            jsonb_to_recordset($4::jsonb) as (product_id bigint, variant_id bigint,
                                              product_name text, variant_name text,
                                              category text, unit_price_cents bigint,
                                              quantity integer)
        ) with ordinality as l (product_id, variant_id, product_name, variant_name, category,
                                unit_price_cents, quantity, line_no)
),
new_job as (
    {enqueue_job}
),
emptied_cart as (
    -- only the lines this order was made of: one added meanwhile stays
    delete from cart_lines
    where user_id = $1
      and id = any ($5::bigint[])
      and exists (select from new_order)
)
select * from new_order
