-- Places one order in one statement, so in one round trip and one
-- transaction: the lines are priced, and the order, its lines, its
-- post-order job and (for a cart order) the emptied cart commit together,
-- or nothing is written. Parameters: $1 the customer, $2 the version the
-- caller's token was issued at (null when the caller was confirmed before),
-- $3 the idempotency key (or null), $4 the lines as one JSON array of
-- {product_id, variant_id, quantity}, $5 the ids of the cart lines it
-- empties; $6 and $7 are the job's (jobs::enqueue::enqueue_sql, filled in at
-- new_job).
--
-- The one-order form of place_orders.sql, with the same rules and the same
-- answer (its order is slot 0): keep the two in step. It exists because a
-- statement's cost, at a few rows, is mostly its plan's nodes, and the batch
-- form's joins by slot cost PostgreSQL 40 % more CPU for a lone order,
-- which is every order at low load and every cart order (BENCHMARKS.md).
--
-- It answers one row per line, as priced (with its problem, if any), with
-- whether the token stands and whether the total fits, beside the order
-- placed or the earlier order the key names; none is there when the token
-- does not stand, a line cannot be ordered, or the total does not fit, or a
-- concurrent request with the same key won the insert. The caller tells
-- which.
with caller as (
    -- the account is still at the token's version (a changed password or
    -- role moves it on), or the caller was confirmed before
    select $2::integer is null
           or exists (select from users where id = $1 and token_version = $2) as token_stands
),
earlier as (
    select o.*
    from orders o
    cross join caller c
    where c.token_stands and o.user_id = $1 and o.idempotency_key = $3
),
requested as (
    select 0 as slot, l.line_no::integer as line_no, l.product_id, l.variant_id, l.quantity
    from rows from (jsonb_to_recordset($4::jsonb) as (product_id bigint, variant_id bigint,
                                                       quantity integer))
        with ordinality as l (product_id, variant_id, quantity, line_no)
),
priced as (
    {priced_lines}
),
totals as (
    -- summed as numeric, which cannot overflow, whatever a line's price
    select sum(p.unit_price_cents::numeric * r.quantity) <= 9223372036854775807 as total_fits,
           sum(p.unit_price_cents::numeric * r.quantity) as total_cents,
           bool_and(p.problem is null) as every_line_orderable
    from priced p
    join requested r using (line_no)
),
new_order as (
    -- only when the token stands, every line can be ordered, the total fits
    -- a bigint, and the key is new
    insert into orders (user_id, total_cents, idempotency_key)
    select $1, t.total_cents::bigint, $3
    from totals t
    cross join caller c
    where c.token_stands
      and t.every_line_orderable
      and t.total_fits
      and not exists (select from earlier)
    on conflict (user_id, idempotency_key) do nothing
    returning *
),
new_lines as (
    insert into order_lines (order_id, line_no, product_id, variant_id, product_name,
                             variant_name, category, unit_price_cents, quantity, subtotal_cents)
    select o.id,
           p.line_no,
           p.product_id,
           p.variant_id,
           p.product_name,
           p.variant_name,
           p.category,
           p.unit_price_cents,
           r.quantity,
           p.unit_price_cents * r.quantity
    from new_order o
    cross join priced p
    join requested r using (line_no)
),
new_job as (
    {enqueue_job}
),
emptied_cart as (
    -- only the lines this order was made of: one added meanwhile stays
    delete from cart_lines
    where user_id = $1
      and id = any ($5::bigint[])
      and exists (select from new_order)
),
placed as (
    select *, false as replayed from new_order
    union all
    select *, true as replayed from earlier
)
select p.*, c.token_stands, t.total_fits, o.*
from priced p
cross join caller c
cross join totals t
left join placed o on true
order by p.line_no
