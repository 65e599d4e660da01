-- Marks counted this run's order (unless counted already) and up to $2 other
-- uncounted orders, oldest first: the exactly-once marker, committed with the
-- figures it guards. A run whose own order another run counted still sweeps
-- up what is waiting, so new orders never wait for their own job's turn in
-- the queue. The others are taken with skip locked: batches never wait for
-- each other. A cancelled order is never counted: its jobs settle it.
update orders
set analytics_applied_at = now()
where id = any (array[$1::bigint] || array(
        select id
        from orders
        where analytics_applied_at is null
          and status = 'placed'
          and id <> $1
        order by id
        limit $2
        for no key update skip locked
    ))
  and analytics_applied_at is null
  and status = 'placed'
returning id, order_number, user_id
