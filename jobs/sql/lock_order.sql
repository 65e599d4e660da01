-- The first statement of every run, so a run never waits here while holding
-- rows another run needs. If a batch of another run holds this order, we
-- wait for it: after its commit we see the order counted; after a rollback
-- we count it ourselves. Skipping it instead could lose it. A cancellation
-- takes the same lock, so the run sees the order's status as it will stay.
-- "no key update" is the lock an UPDATE of non-key columns takes anyway.
select order_number,
       status = 'cancelled' as cancelled,
       analytics_applied_at is not null as applied,
       analytics_reversed_at is not null as reversed
from orders
where id = $1
for no key update
