-- Cancels the order locked by lock_order_for_cancel.sql and enqueues the job
-- that takes its contribution back out of the figures, in one statement, so
-- in one transaction: no cancellation without its job. The job is the one
-- every order has (place_order.sql), under a key of its own; it settles the
-- order whatever it finds, counted already or not.
with cancelled as (
    update orders
    set status = 'cancelled',
        cancelled_at = now()
    where id = $1
      and status = 'placed'
    returning *
),
new_job as (
    insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                             priority, idempotency_key)
    select $2,
           $3,
           convert_to(json_build_object('order_id', c.id,
                                        'order_number', c.order_number)::text, 'UTF8'),
           'Pending',
           0,
           $4,
           now(),
           0,
           'cancel-' || c.id
    from cancelled c
)
select * from cancelled
