-- Step 1. Every product, in id order, the lock a job's product update takes.
-- From here no job can reach its product update until the rebuild commits,
-- and any job that already did has committed (we waited for it here).
select count(*) as products
from (
    select id
    from products
    order by id
    for no key update
) locked
