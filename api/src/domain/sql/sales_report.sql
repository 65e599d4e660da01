-- Units, revenue and orders per period from $1 to $2 (instants, $1 < $2),
-- periods of $3 ('hour' or 'day') of zone $4: the period $1 falls in first,
-- then every one that starts before $2, each with zeros when nothing sold.
-- Of product $5, or of category $6, or of the whole shop when both are null.
--
-- Hours are spans of 60 minutes from the start of the zone's hour. Days
-- are the zone's: from a midnight to the next, 23 or 25 hours across a
-- daylight-saving change, so they are made as the zone's local dates and
-- turned into instants. A period sums the buckets that start in it: quarter
-- hours, and before the rollup's horizon whole days (migration 000014), so a
-- rolled-up day reads as before by day. `hours_since` is that horizon: an
-- hour before it is not kept.
--
-- Each period reads its span of one table's key (a range of the primary
-- key); the scopes not asked for are skipped before they read anything.
with periods as (
    select h as starts_at, h + interval '1 hour' as ends_at
    from generate_series(
        date_trunc('hour', $1::timestamptz, $4::text),
        $2::timestamptz - interval '1 microsecond',
        interval '1 hour'
    ) as h
    where $3::text = 'hour'
    union all
    select d at time zone $4::text, (d + interval '1 day') at time zone $4::text
    from generate_series(
        date_trunc('day', $1::timestamptz, $4::text) at time zone $4::text,
        ($2::timestamptz - interval '1 microsecond') at time zone $4::text,
        interval '1 day'
    ) as d
    where $3::text = 'day'
)
select p.starts_at,
       p.ends_at,
       coalesce(s.units, 0) as units,
       coalesce(s.revenue_cents, 0) as revenue_cents,
       coalesce(s.orders, 0) as orders,
       (select nullif(days_before, '-infinity') from sales_rollup) as hours_since
from periods p
cross join lateral (
    select sum(b.units)::bigint as units,
           sum(b.revenue_cents)::bigint as revenue_cents,
           sum(b.orders)::bigint as orders
    from (
        select units, revenue_cents, orders
        from product_sales
        where product_id = $5::bigint
          and starts_at >= p.starts_at and starts_at < p.ends_at
        union all
        select units, revenue_cents, orders
        from category_sales
        where $5::bigint is null and category = $6::text
          and starts_at >= p.starts_at and starts_at < p.ends_at
        union all
        select units, revenue_cents, orders
        from shop_sales
        where $5::bigint is null and $6::text is null
          and starts_at >= p.starts_at and starts_at < p.ends_at
    ) b
) s
order by p.starts_at
