-- Locks the order for its cancellation, with the lock the post-order job
-- takes first (jobs/sql/lock_order.sql): whichever of the two comes second
-- sees what the first committed. Only an order the caller may see is locked
-- ($3: the customer, null for an admin), so nobody can hold up another
-- customer's order. $2: the customer's window, in seconds, measured with
-- the database's clock, the one that stamped created_at.
select *,
       now() - created_at > make_interval(secs => $2) as past_window
from orders
where id = $1
  and ($3::bigint is null or user_id = $3)
for no key update
