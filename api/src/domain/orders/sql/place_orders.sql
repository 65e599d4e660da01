-- Places a batch of orders in one statement, so in one round trip and one
-- transaction: each order's lines are priced, and each order that can be
-- placed commits with its lines and its post-order job, while an order that
-- cannot leaves its neighbours alone. $1 is the batch as one JSON array of
--   {slot, user_id, token_version (or null), key (or null), job_id,
--    lines: [{product_id, variant_id (or null), quantity}]}
-- with a distinct slot per order from 0 (token_version: the version the
-- caller's token was issued at, null when the caller was confirmed before),
-- and $2 the jobs' attempts
-- (jobs::enqueue::enqueue_sql, filled in at new_jobs). A lone order, and a
-- cart's, goes by place_order.sql: the same rules and answer, leaner.
--
-- It answers one row per line of each order, by slot and line, as priced
-- (with its problem, if any), with whether the order's token stands and
-- whether its total fits, beside the order placed or the earlier order its
-- key names; none is there when the token does not stand, a line cannot be
-- ordered, or the total does not fit, or another request with the same key
-- (in this batch or elsewhere) won the insert. The caller tells which.
with requests as (
    -- each order's id drawn now, so that its lines and its job find it
    -- whatever order the insert returns its rows in; its token stands when
    -- the account is still at the token's version (a changed password or
    -- role moves it on), or the caller was confirmed before
    select r.slot, r.user_id, r.key, r.job_id, r.lines,
           r.token_version is null
           or exists (select from users u
                      where u.id = r.user_id and u.token_version = r.token_version)
               as token_stands,
           nextval(pg_get_serial_sequence('orders', 'id')) as order_id
    from jsonb_to_recordset($1::jsonb)
        as r (slot integer, user_id bigint, token_version integer, key text, job_id text,
              lines jsonb)
),
earlier as (
    select o.*, r.slot as order_slot, true as replayed
    from requests r
    join orders o on o.user_id = r.user_id and o.idempotency_key = r.key
    where r.token_stands
),
requested as (
    select r.slot, l.line_no::integer as line_no, l.product_id, l.variant_id, l.quantity
    from requests r
    cross join lateral rows from (
        jsonb_to_recordset(r.lines) as (product_id bigint, variant_id bigint, quantity integer)
    ) with ordinality as l (product_id, variant_id, quantity, line_no)
),
priced as (
    {priced_lines}
),
totals as (
    -- summed as numeric, which cannot overflow, whatever a line's price
    select p.slot,
           sum(p.unit_price_cents::numeric * q.quantity) <= 9223372036854775807 as total_fits,
           sum(p.unit_price_cents::numeric * q.quantity) as total_cents,
           bool_and(p.problem is null) as every_line_orderable
    from priced p
    join requested q using (slot, line_no)
    group by p.slot
),
new_orders as (
    -- only the orders whose token stands, whose every line can be ordered,
    -- whose total fits a bigint, and whose key is new
    insert into orders (id, user_id, total_cents, idempotency_key)
    overriding system value
    select r.order_id, r.user_id, t.total_cents::bigint, r.key
    from requests r
    join totals t using (slot)
    where r.token_stands
      and t.every_line_orderable
      and t.total_fits
      and not exists (select from earlier e where e.order_slot = r.slot)
    order by r.slot
    on conflict (user_id, idempotency_key) do nothing
    returning *
),
placed_requests as (
    -- the orders written, with what their lines and job need
    select n.id, n.order_number, r.slot, r.job_id
    from new_orders n
    join requests r on r.order_id = n.id
),
new_lines as (
    insert into order_lines (order_id, line_no, product_id, variant_id, product_name,
                             variant_name, category, unit_price_cents, quantity, subtotal_cents)
    select r.id,
           p.line_no,
           p.product_id,
           p.variant_id,
           p.product_name,
           p.variant_name,
           p.category,
           p.unit_price_cents,
           q.quantity,
           p.unit_price_cents * q.quantity
    from placed_requests r
    join priced p on p.slot = r.slot
    join requested q on q.slot = p.slot and q.line_no = p.line_no
),
new_jobs as (
    {enqueue_job}
),
placed as (
    select n.*, r.slot as order_slot, false as replayed
    from new_orders n
    join placed_requests r using (id)
    union all
    select * from earlier
)
select p.*, r.token_stands, t.total_fits, o.*
from priced p
join requests r using (slot)
join totals t using (slot)
left join placed o on o.order_slot = p.slot
order by p.slot, p.line_no
