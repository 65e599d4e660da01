-- Marks counted this run's order $1 (unless it is null or counted already)
-- and up to $2 other uncounted orders, oldest first: the exactly-once marker,
-- committed with the figures it guards. A run whose own order another run
-- counted still sweeps up what is waiting, so new orders never wait for their
-- own job's turn in the queue. The others are taken with skip locked: batches
-- never wait for each other. A cancelled order is never counted: its jobs
-- settle it. A held-back order is taken by its own job only, and counting it
-- releases it.
update orders
set analytics_applied_at = now(),
    analytics_held_back_at = null,
    analytics_failure = null
where id = any (array[$1::bigint] || array(
        select id
        from orders
        where analytics_applied_at is null
          and status = 'placed'
          and analytics_held_back_at is null
          and id is distinct from $1
        order by id
        limit $2
        for no key update skip locked
    ))
  and analytics_applied_at is null
  and status = 'placed'
returning id, order_number, user_id
