-- The other orders this run counted have jobs of their own (and a reversal's
-- order has a second one). Those no worker has taken yet are done now, in
-- the transaction that settled their orders, with $2 as their result:
-- a backlog drains at many orders per run, instead of one apalis job (fetch,
-- run, ack) per order. Jobs already taken (queued or running) are left to
-- their worker, and find their order counted. A job that failed or was
-- killed (say, its attempts ran out while PostgreSQL was down) is done too
-- once its order is counted: nothing is left for an operator to retry.
-- Returns their ids: the board tells each job which run counted its order.
-- The queue is spelled out in the text (jobs::QUEUE, filled in by
-- src/analytics.rs), not a parameter: it is the predicate of the unique
-- index on the key alone (migration m20251207_000012_order_job_keys,
-- sql/schema/order_job_keys.up.sql), which
-- PostgreSQL reads the keys through, knowing each names one job statistics
-- or none, only when the statement itself names the queue.
update apalis.jobs
set status = 'Done',
    done_at = now(),
    last_result = jsonb_build_object('Ok', $2::text)
where job_type = '{queue}'
  and idempotency_key = any ($1::text[])
  and status in ('Pending', 'Failed', 'Killed')
returning id
