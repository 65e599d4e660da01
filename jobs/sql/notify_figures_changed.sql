-- Tells every listening API process which orders and products this run
-- changed. PostgreSQL delivers the messages when (and only if) the run
-- commits, after its figures are visible. One message per payload, each
-- under NOTIFY's 8000-byte limit.
select pg_notify($1, payload)
from unnest($2::text[]) as payload
