-- Step 1. The figures' lock, alone (see ../lock_figures_shared.sql): from
-- here no job or sweep writes a figure until the rebuild commits, and every
-- one that had begun has committed. Placements and product changes go on;
-- products created meanwhile are either in the recount or have no counted
-- orders yet. The sales rollup takes it too (../sales_rollup/next_day.sql).
select pg_advisory_xact_lock($1)
