-- Locks the batch's products in id order before they are updated, so
-- concurrent batches (and a rebuild) that share products queue behind each
-- other instead of deadlocking. A statement of its own: the update that
-- follows then reads with a snapshot taken after every lock is ours. Locked
-- and updated in one statement, a row another batch changed meanwhile would
-- be locked through its new version but updated through the old one, which
-- waits on whoever waits for us.
-- "no key update" lets placements' foreign-key checks (key share) through.
-- The lines are read one order of $1 (distinct orders) at a time
-- (apply_product_figures.sql says why).
select p.id
from products p
where p.id in (
    select l.product_id
    from unnest($1::bigint[]) as b (order_id)
    cross join lateral (
        select distinct product_id
        from order_lines
        where order_id = b.order_id
    ) l
)
order by p.id
for no key update
