-- Bounded sales history: the quarter hours of migration 000013 are kept for
-- SALES_HOURS_RETENTION, then rolled into days of the shop's time zone
-- (STORE_TIME_ZONE) by the background rollup (jobs/src/sales_rollup.rs).
-- A rolled day is one row per product, category and the shop, keyed by the
-- instant its day started, in the same tables: a report by day sums the rows
-- of a day's span whatever their grain.
--
-- One row says where the quarter hours end: every bucket before
-- `days_before` (a midnight of `time_zone`) is a day, every bucket from it
-- on a quarter hour. The rollup moves it forward under the figures' lock
-- alone (as a rebuild does), so a counting run reads one value for its whole
-- transaction.
create table sales_rollup (
    only_row boolean primary key default true check (only_row),
    days_before timestamptz not null default '-infinity',
    -- the zone the rolled days are days of
    time_zone text not null default 'UTC'
);
insert into sales_rollup default values;

-- The bucket of an order placed at `placed_at`: its quarter hour, or its day
-- once that day has been rolled up (an order counted late, or a rolled-up
-- order taken back out after a cancellation, lands in its day). One
-- definition for the counting run, the reversal and the rebuild; a plain
-- expression, so PostgreSQL inlines it.
create function sales_bucket(placed_at timestamptz, days_before timestamptz, time_zone text)
returns timestamptz
language sql
stable
as $$
    select case
        when placed_at < days_before then date_trunc('day', placed_at, time_zone)
        else date_bin('15 minutes', placed_at, timestamptz '2000-01-01 00:00:00+00')
    end
$$;
