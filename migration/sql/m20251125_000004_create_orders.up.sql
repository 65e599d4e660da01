create sequence order_number_seq;

create table orders (
    id bigint generated always as identity primary key,
    order_number text not null unique
        default 'ORD-' || lpad(nextval('order_number_seq')::text, 8, '0'),
    user_id bigint not null references users (id),
    status text not null default 'placed' check (status in ('placed')),
    total_cents bigint not null check (total_cents >= 0),
    idempotency_key text check (length(idempotency_key) between 1 and 200),
    created_at timestamptz not null default now(),
    -- set by the post-order job in the transaction that counts the order
    analytics_applied_at timestamptz,
    -- a replayed key finds the first order; concurrent replays meet here
    constraint orders_user_idempotency_key unique (user_id, idempotency_key)
);

-- myOrders: a customer's orders, newest first
create index orders_user_id_idx on orders (user_id, id desc);
-- the job's batch claim looks only at orders not yet counted
create index orders_unapplied_idx on orders (id) where analytics_applied_at is null;

create table order_lines (
    order_id bigint not null references orders (id) on delete cascade,
    line_no integer not null check (line_no >= 1),
    product_id bigint not null references products (id),
    variant_id bigint references product_variants (id),
    -- a snapshot of the product as it was ordered
    product_name text not null,
    variant_name text,
    category text not null,
    unit_price_cents bigint not null check (unit_price_cents >= 0),
    quantity integer not null check (quantity between 1 and 99),
    subtotal_cents bigint not null check (subtotal_cents = unit_price_cents * quantity),
    primary key (order_id, line_no)
);
