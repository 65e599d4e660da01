-- An order whose counting fails on its own (a row the figures cannot take, a
-- constraint or trigger an operator added) is held back: left out of every
-- other run's batch, the sweep and the rebuild, so it cannot stop the
-- others' figures. Only its own job still tries it, and an operator's retry
-- of that job clears the marker. The failure is the error of the run that
-- held it back, for operators.
alter table orders
    add column analytics_held_back_at timestamptz,
    add column analytics_failure text,
    add constraint orders_held_back_check
        check ((analytics_held_back_at is null) = (analytics_failure is null));

-- The batch claim takes only orders that are neither counted nor held back.
drop index orders_unapplied_idx;
create index orders_unapplied_idx on orders (id)
    where analytics_applied_at is null
      and status = 'placed'
      and analytics_held_back_at is null;

-- Admins list the held-back orders: few, so a small index.
create index orders_held_back_idx on orders (id desc) where analytics_held_back_at is not null;

-- Money bounds: a unit price is at most 1,000,000.00. With at most 99 units
-- a line and 100 lines an order, an order's total stays below 10^12 cents,
-- far inside bigint. The figures are bigint too; why they cannot overflow
-- is written beside the statement that adds to them
-- (jobs/sql/apply_product_figures.sql). NOT VALID: older rows above the
-- bound are left as they were (an order of such a product is refused, and a
-- job that cannot count one holds back that order alone); new and changed
-- rows are checked.
alter table products
    add constraint products_price_cents_max check (price_cents <= 100000000) not valid;
alter table product_variants
    add constraint product_variants_price_cents_max check (price_cents <= 100000000) not valid;
alter table order_lines
    add constraint order_lines_unit_price_cents_max check (unit_price_cents <= 100000000) not valid;
