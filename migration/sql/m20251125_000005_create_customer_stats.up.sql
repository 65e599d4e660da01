-- Per-customer totals behind mostOrderedItems and favoriteCategories,
-- maintained by the post-order job for customers only.
create table customer_product_stats (
    user_id bigint not null references users (id) on delete cascade,
    product_id bigint not null references products (id) on delete cascade,
    quantity bigint not null check (quantity >= 0),
    last_ordered_at timestamptz not null,
    primary key (user_id, product_id)
);

create table customer_category_stats (
    user_id bigint not null references users (id) on delete cascade,
    category text not null,
    quantity bigint not null check (quantity >= 0),
    last_ordered_at timestamptz not null,
    primary key (user_id, category)
);
