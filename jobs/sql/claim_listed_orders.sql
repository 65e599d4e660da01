-- Marks counted those of the orders $1 that still wait: a part of a batch
-- that failed, run again on its own to find the order that made it fail.
-- Orders counted, cancelled, held back or taken by another run meanwhile are
-- left out, as the batch claim leaves them out.
update orders
set analytics_applied_at = now()
where id = any (array(
        select id
        from orders
        where id = any ($1::bigint[])
          and analytics_applied_at is null
          and status = 'placed'
          and analytics_held_back_at is null
        order by id
        for no key update skip locked
    ))
returning id, order_number, user_id
