-- What every Tally process on this database must agree on, kept where they
-- all see it: several API replicas behind one balancer are one service.

-- Secrets Tally makes for itself. 'token' signs bearer tokens when
-- JWT_SECRET is unset: made once, by whichever process starts first, so a
-- token from one replica is good at the others and survives restarts.
create table server_secrets (
    name text primary key,
    value text not null check (length(value) >= 32),
    created_at timestamptz not null default now()
);

-- Sign-in rates (failed logins per client address and per account,
-- registrations per client address), as GCRA: each key's theoretical
-- arrival time. An attempt may go ahead while `tat` is at most the
-- burst's tolerance ahead of now; each counted attempt moves it one
-- interval on. A row whose `tat` has passed stands for a full burst, like
-- no row at all, and may be deleted.
create table sign_in_throttles (
    key text primary key,
    tat timestamptz not null
);

-- The client addresses (an IPv4 address, an IPv6 /64) each account has
-- signed in from: guesses at an account from elsewhere never stop its
-- owner from signing in from one of these.
create table sign_in_addresses (
    user_id bigint not null references users (id) on delete cascade,
    client inet not null,
    first_at timestamptz not null default now(),
    primary key (user_id, client)
);

-- Automatic persisted queries' texts by their SHA-256, kept by the replica
-- that validated them for the others; bounded (4 MiB of text), the least
-- recently fetched out first.
create table persisted_queries (
    hash text primary key,
    query text not null,
    used_at timestamptz not null default now()
);
