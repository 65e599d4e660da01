alter table order_lines drop constraint order_lines_unit_price_cents_max;
alter table product_variants drop constraint product_variants_price_cents_max;
alter table products drop constraint products_price_cents_max;

drop index orders_held_back_idx;
drop index orders_unapplied_idx;
create index orders_unapplied_idx on orders (id)
    where analytics_applied_at is null and status = 'placed';

alter table orders
    drop constraint orders_held_back_check,
    drop column analytics_failure,
    drop column analytics_held_back_at;
