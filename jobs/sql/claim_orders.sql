-- Marks this run's order and up to $2 other uncounted orders applied: the
-- exactly-once marker, committed with the figures it guards. The others are
-- taken with skip locked, so batches never wait for each other; their own
-- jobs later find them applied and finish as no-ops.
update orders
set analytics_applied_at = now()
where id = any (array[$1::bigint] || array(
        select id
        from orders
        where analytics_applied_at is null
          and id <> $1
        order by id
        limit $2
        for no key update skip locked
    ))
returning id, order_number, user_id
