-- The first statement of every run that writes figures. Runs share this
-- lock with each other; a rebuild takes it alone (rebuild/lock_figures.sql),
-- so it waits for the runs in flight to commit and new runs wait here, before
-- they lock anything, until it commits. Nothing a rebuild recomputes can then
-- change under it, whatever products or orders appear meanwhile.
-- It also turns JIT compilation off for the rest of the run's transaction.
-- PostgreSQL compiles a statement whose estimated cost passes
-- jit_above_cost, and without statistics it takes each order of a batch to
-- have 0.5% of all lines: reading 500 orders' lines is then estimated to
-- cost millions, and compiling it took 0.2-0.3 s of a statement that runs in a
-- few ms. A run's statements are all small; none gains from JIT.
select pg_advisory_xact_lock_shared($1),
       set_config('jit', 'off', true)
