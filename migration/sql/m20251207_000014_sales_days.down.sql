-- Rolled-up days stay in the sales tables, beside the quarter hours.
drop function sales_bucket(timestamptz, timestamptz, text);
drop table sales_rollup;
