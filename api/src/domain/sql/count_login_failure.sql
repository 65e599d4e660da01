-- A failed login counts in each bucket its gate let it through uncounted,
-- whatever that bucket says now: concurrent guesses that all passed a full
-- bucket leave it in debt, and the next wait is the longer. No debt makes
-- a wait longer than one period, though (each key's cap).
--
-- $1 the keys, $2 their steps, $3 their caps, in seconds
with bucket as (
    select key, step, cap
    from unnest($1::text[], $2::float8[], $3::float8[]) as b (key, step, cap)
)
insert into sign_in_throttles (key, tat)
select key, now() + make_interval(secs => step)
from bucket
on conflict (key) do update
set tat = least(
    greatest(sign_in_throttles.tat, now()) + (excluded.tat - now()),
    now() + make_interval(secs => (select cap from bucket b where b.key = excluded.key))
)
