-- The first statement of every run, so a run never waits here while holding
-- rows another run needs. If a batch of another run holds this order, we
-- wait for it: after its commit we see the order counted; after a rollback
-- we count it ourselves. Skipping it instead could lose it.
-- "no key update" is the lock an UPDATE of non-key columns takes anyway.
select analytics_applied_at is not null as applied,
       order_number
from orders
where id = $1
for no key update
