-- The first statement of every run that writes figures. Runs share this
-- lock with each other; a rebuild takes it alone (rebuild/lock_figures.sql),
-- so it waits for the runs in flight to commit and new runs wait here, before
-- they lock anything, until it commits. Nothing a rebuild recomputes can then
-- change under it, whatever products or orders appear meanwhile.
select pg_advisory_xact_lock_shared($1)
