-- An account signed in (a login that succeeded, or a registration): the
-- attempts its gate counted are given back, and the client's address
-- becomes one the account knows.
--
-- $1 the keys to give back, $2 their steps in seconds; $3 the account;
-- $4 the client's address (null: none)
with given_back as (
    update sign_in_throttles t
    set tat = t.tat - make_interval(secs => b.step)
    from unnest($1::text[], $2::float8[]) as b (key, step)
    where t.key = b.key
)
insert into sign_in_addresses (user_id, client)
select $3, $4::inet
where $4::text is not null
on conflict do nothing
