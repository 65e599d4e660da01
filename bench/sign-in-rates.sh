#!/usr/bin/env bash
# What the shared sign-in rates cost a login, side by side in one run: the
# one statement a login makes now (api/src/domain/sql/login_gate.sql: the
# account, whether its client's address is known, and both rates) against
# the account read a login made before, each sent by pgbench for the same
# time on a database of Tally's schema with 10,000 accounts. A login from
# an address its account knows with no failure lately, the common case,
# runs the gate alone; the password check (Argon2, tens of milliseconds)
# is the same in both and left out.
#
#   bench/sign-in-rates.sh [seconds per contender, default 10] [clients, default 8]
#
# Needs PostgreSQL as the tests do (TEST_DATABASE_URL's server) and a
# built `tally` (cargo build -p tally).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-10}
clients=${2:-8}
server=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
db=tally_bench_sign_in_$$
url=${server/\/postgres\?/\/$db?}
work=$(mktemp -d)
trap 'psql -q "$server" -c "drop database if exists $db" >/dev/null; rm -rf "$work"' EXIT

psql -q "$server" -c "create database $db"
DATABASE_URL=$url target/debug/tally migrate >/dev/null
psql -q "$url" <<'SQL'
insert into users (name, email, password_hash)
select 'User ' || n, 'u' || n || '@bench.test', 'x' from generate_series(1, 10000) n;
-- each account knows the address it signs in from below
insert into sign_in_addresses (user_id, client)
select id, ('10.0.' || (id / 250) || '.' || (id % 250))::inet from users;
SQL

# the same account and address for both contenders: account n, from its own
{
    echo '\set n random(1, 10000)'
    echo "select id, name, email, password_hash, role, created_at, token_version
from users where lower(email) = 'u' || :n || '@bench.test';"
} >"$work/before.sql"
{
    echo '\set n random(1, 10000)'
    # the gate's parameters, written in: email, address, the two keys, then
    # the default rates' steps and tolerances (10/10m, 5/15m)
    sed -e "s/\\\$1/('u' || :n || '@bench.test')/g" \
        -e "s/\\\$2/('10.0.' || (:n \/ 250) || '.' || (:n % 250))/g" \
        -e "s/\\\$3/('login address 10.0.' || (:n \/ 250) || '.' || (:n % 250))/g" \
        -e "s/\\\$4/('login account u' || :n || '@bench.test')/g" \
        -e 's/\$5/60.0/g; s/\$6/180.0/g; s/\$7/540.0/g; s/\$8/720.0/g' \
        api/src/domain/sql/login_gate.sql |
        grep -v '^ *--' | tr '\n' ' '
    echo ';'
} >"$work/gate.sql"

run() {
    pgbench -n -M prepared -c "$clients" -j 2 -T "$seconds" -f "$work/$1.sql" "$url" 2>/dev/null |
        awk -v name="$1" '/latency average/ { lat = $4 } /^tps/ { tps = $3 }
            END { printf "%-7s %10.0f statements/s  %6.3f ms average\n", name, tps, lat }'
}
echo "sign-in statement, $clients clients, $seconds s each (pgbench)"
before=$(run before)
gate=$(run gate)
echo "$before"
echo "$gate"
awk -v a="$(echo "$before" | awk '{print $2}')" -v b="$(echo "$gate" | awk '{print $2}')" \
    'BEGIN { printf "gate / before: %.2f x the statements a second\n", b / a }'
