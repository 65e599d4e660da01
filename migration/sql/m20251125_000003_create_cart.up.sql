-- A customer's cart is the set of their lines.
create table cart_lines (
    id bigint generated always as identity primary key,
    user_id bigint not null references users (id) on delete cascade,
    product_id bigint not null references products (id) on delete cascade,
    variant_id bigint references product_variants (id) on delete cascade,
    quantity integer not null check (quantity between 1 and 99),
    added_at timestamptz not null default now(),
    -- adding the same product and variant again merges into this line;
    -- "no variant" is one line too, hence nulls not distinct
    constraint cart_lines_user_product_variant_key
        unique nulls not distinct (user_id, product_id, variant_id)
);
