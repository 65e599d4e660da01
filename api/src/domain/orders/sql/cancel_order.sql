-- Cancels the order locked by lock_order_for_cancel.sql and enqueues the job
-- that takes its contribution back out of the figures, in one statement, so
-- in one transaction: no cancellation without its job. The job is the one
-- every order has (place_orders.sql), under a key of its own; it settles the
-- order whatever it finds, counted already or not. The job's row is the
-- jobs crate's, filled in where new_job is (jobs::enqueue::enqueue_sql,
-- reading $2 and $3).
with cancelled as (
    update orders
    set status = 'cancelled',
        cancelled_at = now()
    where id = $1
      and status = 'placed'
    returning *
),
new_job as (
    {enqueue_job}
)
select * from cancelled
