-- The body of a CTE that enqueues a post-order job for each order of the
-- caller's CTE {orders} (its columns id and order_number), inside the
-- caller's statement, so in its transaction: no order or cancellation
-- without its job. It writes the row apalis-postgres's own push would: the
-- arguments as JSON bytes (its JsonCodec, the fields of PostOrderJob), the
-- queue in job_type. The key allows one job of each kind per order.
-- Assembled by jobs::enqueue::enqueue_sql, which fills in the braces.
insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                         priority, idempotency_key)
select {job_id},
       '{queue}',
       convert_to(json_build_object('order_id', o.id,
                                    'order_number', o.order_number)::text, 'UTF8'),
       'Pending',
       0,
       {max_attempts},
       now(),
       0,
       '{key_prefix}' || o.id
from {orders} o
