create table users (
    id bigint generated always as identity primary key,
    name text not null check (length(name) between 1 and 100),
    -- the API stores emails lowercased; the unique index below makes the rule
    -- hold for any writer
    email text not null check (length(email) between 3 and 254),
    password_hash text not null,
    role text not null default 'customer' check (role in ('customer', 'admin')),
    created_at timestamptz not null default now()
);

create unique index users_email_key on users (lower(email));
