-- The exactly-once marker of a reversal, committed with the figures it
-- guards: a cancelled order's later runs find it and change nothing.
update orders
set analytics_reversed_at = now()
where id = $1
  and status = 'cancelled'
  and analytics_reversed_at is null
