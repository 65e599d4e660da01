-- The schema before it has no way to say an order was cancelled, and
-- dropping such orders would rewrite history: refuse instead.
do $$
begin
    if exists (select from orders where status = 'cancelled') then
        raise exception 'cancelled orders exist: they cannot be migrated down';
    end if;
end
$$;

drop index orders_unapplied_idx;
create index orders_unapplied_idx on orders (id) where analytics_applied_at is null;

alter table orders
    drop constraint orders_reversed_only_cancelled_check,
    drop constraint orders_cancelled_at_check,
    drop column analytics_reversed_at,
    drop column cancelled_at;

alter table orders drop constraint orders_status_check;
alter table orders add constraint orders_status_check check (status in ('placed'));
