-- Deletes up to 1000 jobs that finished successfully longer ago than $1
-- seconds. Small batches keep each transaction short; skip locked keeps the
-- pruner out of the workers' way. Failed jobs stay until an operator acts.
with old as (
    select id
    from apalis.jobs
    where status = 'Done'
      and done_at < now() - make_interval(secs => $1)
    limit 1000
    for update skip locked
)
delete from apalis.jobs j
using old
where j.id = old.id
