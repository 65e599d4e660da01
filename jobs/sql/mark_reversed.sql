-- The exactly-once marker of a reversal, committed with the figures it
-- guards: a cancelled order's later runs find it and change nothing. A
-- cancelled order has nothing left to hold back.
update orders
set analytics_reversed_at = now(),
    analytics_held_back_at = null,
    analytics_failure = null
where id = $1
  and status = 'cancelled'
  and analytics_reversed_at is null
