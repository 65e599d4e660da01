-- cancelOrder: an order may become 'cancelled', and its contribution to the
-- figures is then taken back by a post-order job, exactly once.
alter table orders drop constraint orders_status_check;
alter table orders add constraint orders_status_check check (status in ('placed', 'cancelled'));

alter table orders
    add column cancelled_at timestamptz,
    -- set by the job in the transaction that takes the order's contribution
    -- back (or finds it never counted): the exactly-once marker of reversal
    add column analytics_reversed_at timestamptz,
    add constraint orders_cancelled_at_check
        check ((status = 'cancelled') = (cancelled_at is not null)),
    add constraint orders_reversed_only_cancelled_check
        check (analytics_reversed_at is null or status = 'cancelled');

-- The batch claim counts placed orders only: a cancelled order is never
-- added, so the index leaves those out too.
drop index orders_unapplied_idx;
create index orders_unapplied_idx on orders (id)
    where analytics_applied_at is null and status = 'placed';
