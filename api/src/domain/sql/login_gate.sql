-- Whether a login may check its password now, and the account it names, in
-- one statement: for a client with no recent failures signing in from an
-- address its account knows (the common case), the only one a login makes.
--
-- Two rates (GCRA: see migration m20251207_000010): failed logins from the
-- client's address, and failed logins at the account from addresses it has
-- never signed in from, so guesses from elsewhere never lock its owner out.
--
-- The account's rate counts every attempt it applies to here, before the
-- password is checked, in one upsert that also decides: concurrent guesses
-- at an account cannot pass its count together, on any replica. A success
-- gives the attempt back (signed_in.sql). The address's rate counts here
-- only once it is not full (a failure lately): an address with no recent
-- failure (the common case) is not written to, and a failure counts
-- afterwards (count_login_failure.sql); concurrent first guesses from one
-- address can overshoot its burst by as many as are checked at once, which
-- the failures then owe. An attempt either rate refuses counts in neither.
--
-- $1 the email, lowercased; $2 the client's address (null: none);
-- $3, $4 the address's and the account's keys ($3 null without an address);
-- $5, $6 their steps and $7, $8 their tolerances, in seconds
with account as (
    select id, name, email, password_hash, role, created_at, token_version
    from users
    where lower(email) = $1
),
known as (
    select exists (
        select
        from sign_in_addresses s
        join account a on a.id = s.user_id
        where s.client = $2::inet
    ) as known
),
bucket as (
    select g.key, g.step, g.tolerance, g.of_address, t.tat
    from (
        values
            ($3::text, make_interval(secs => $5), make_interval(secs => $7), true),
            ($4::text, make_interval(secs => $6), make_interval(secs => $8), false)
    ) as g (key, step, tolerance, of_address)
    left join sign_in_throttles t on t.key = g.key
    where g.key is not null
      and (g.of_address or not (select known from known))
),
address_allows as (
    select coalesce(bool_and(tat is null or tat <= now() + tolerance), true) as allows
    from bucket
    where of_address
),
counted_at_account as (
    insert into sign_in_throttles (key, tat)
    select key, now() + step
    from bucket
    where not of_address
      and (select allows from address_allows)
    on conflict (key) do update
    set tat = greatest(sign_in_throttles.tat, now()) + make_interval(secs => $6)
    where sign_in_throttles.tat <= now() + make_interval(secs => $8)
    returning key
),
account_allows as (
    select not exists (select from bucket where not of_address)
        or exists (select from counted_at_account) as allows
),
counted_at_address as (
    update sign_in_throttles t
    set tat = t.tat + b.step
    from bucket b
    where t.key = b.key
      and b.of_address
      and (select allows from account_allows)
      and t.tat > now()
      and t.tat <= now() + b.tolerance
    returning t.key
)
select
    a.id,
    a.name,
    a.email,
    a.password_hash,
    a.role,
    a.created_at,
    a.token_version,
    (select known from known) as known,
    (select allows from address_allows) and (select allows from account_allows) as allowed,
    ceil(extract(epoch from greatest(
        (select max(tat - tolerance - now()) from bucket),
        -- refused by counts made meanwhile, which this statement cannot
        -- see: the account's next attempt is a step away at most
        case
            when (select allows from address_allows)
                and not (select allows from account_allows)
            then make_interval(secs => $6)
        end,
        interval '0'
    )))::bigint as retry_after_s,
    array(
        select key from counted_at_account
        union all
        select key from counted_at_address
    ) as counted
from (select 1) as one
left join account a on true
