-- Whether a registration from this address may go ahead. It counts at once,
-- before the password is hashed: registrations are few, and counting after
-- the hash would let concurrent ones all through. A refused one counts not.
--
-- $1 the address's key, $2 the step, $3 the tolerance, in seconds
with before as (
    select tat from sign_in_throttles where key = $1
),
counted as (
    insert into sign_in_throttles (key, tat)
    values ($1, now() + make_interval(secs => $2))
    on conflict (key) do update
    set tat = greatest(sign_in_throttles.tat, now()) + make_interval(secs => $2)
    where sign_in_throttles.tat <= now() + make_interval(secs => $3)
    returning tat
)
select
    exists (select from counted) as allowed,
    ceil(extract(epoch from greatest(
        (select tat from before) - make_interval(secs => $3) - now(),
        interval '0'
    )))::bigint as retry_after_s
