create table products (
    id bigint generated always as identity primary key,
    name text not null check (length(name) between 1 and 200),
    description text not null default '' check (length(description) <= 5000),
    -- a lowercase slug such as "pizza" or "soft-drinks"
    category text not null check (category ~ '^[a-z0-9]+(-[a-z0-9]+)*$' and length(category) <= 50),
    price_cents bigint not null check (price_cents >= 0),
    available boolean not null default true,
    -- figures maintained by the post-order job
    sales_count bigint not null default 0 check (sales_count >= 0),
    total_revenue_cents bigint not null default 0 check (total_revenue_cents >= 0),
    rating double precision not null default 4.0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- products(category:) pages through one category in id order
create index products_category_id_idx on products (category, id);

create table product_variants (
    id bigint generated always as identity primary key,
    product_id bigint not null references products (id) on delete cascade,
    name text not null check (length(name) between 1 and 100),
    price_cents bigint not null check (price_cents >= 0),
    -- also the index behind "variants of these products"
    constraint product_variants_product_name_key unique (product_id, name)
);

-- The rating tiers of the SPEC, by units sold: the job and the rebuild both
-- call this, so the tier edges live in one place.
create function product_rating(sales_count bigint) returns double precision
language sql
immutable
parallel safe
return case
    when sales_count >= 200 then 5.0
    when sales_count >= 100 then 4.7
    when sales_count >= 50 then 4.5
    when sales_count >= 10 then 4.2
    else 4.0
end;
