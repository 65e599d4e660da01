-- The first statement of a job's run, in one round trip: the figures' lock,
-- shared (see lock_figures_shared.sql), then the run's own order, locked only
-- once the join has taken the figures' lock, so a run never waits for a
-- rebuild while holding a row. Nothing before it holds rows another run
-- needs. If a batch of another run holds this order, we wait for it: after
-- its commit we see the order counted; after a rollback we count it
-- ourselves. Skipping it instead could lose it. A cancellation takes the same
-- lock, so the run sees the order's status as it will stay.
-- "no key update" is the lock an UPDATE of non-key columns takes anyway.
-- JIT goes off for the rest of the transaction (lock_figures_shared.sql
-- says why).
with figures_lock as (
    select pg_advisory_xact_lock_shared($2),
           set_config('jit', 'off', true)
)
select o.order_number,
       o.status = 'cancelled' as cancelled,
       o.analytics_applied_at is not null as applied,
       o.analytics_reversed_at is not null as reversed,
       o.analytics_held_back_at is not null as held_back
from figures_lock
cross join orders o
where o.id = $1
for no key update of o
