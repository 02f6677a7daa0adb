#!/usr/bin/env bash
# The console's CDR list page over a seeded store: p50/p99 of the whole
# request on loopback (server-side rendering plus the query), 200 requests
# per shape. Usage: bench/console/run.sh <tally binary> <data dir with tally.db>
# (seed it first with the store's cdr_query_bench example; bench/console/README.md).
set -euo pipefail
BIN=$1 DATA=$2 PORT=${PORT:-26100} N=${N:-200}
B=http://127.0.0.1:$PORT J=$(mktemp)
"$BIN" serve --data-dir "$DATA" --sip-bind 127.0.0.1 --sip-port $((PORT + 1)) \
  --http-bind 127.0.0.1 --http-port "$PORT" --admin-password bench-admin-pw >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER; rm -f $J' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "$B/" && break; sleep 0.1; done
csrf() { curl -s -c "$J" -b "$J" "$B$1" | grep -o 'name="csrf" value="[0-9a-f]*"' | head -1 | sed 's/.*value="//;s/"//'; }
C=$(csrf /console/sign-in)
curl -s -o /dev/null -c "$J" -b "$J" -d "csrf=$C&domain=&username=admin&password=bench-admin-pw" "$B/console/sign-in"
# The tenant with the most CDRs is the one the generator seeds first.
PAGE=$(curl -s -c "$J" -b "$J" "$B/console/tenants")
TENANT=$(echo "$PAGE" | grep -o '/console/tenants/[0-9]*/delete' | head -1 | grep -o '[0-9]*')
C=$(csrf /console/tenants)
curl -s -o /dev/null -c "$J" -b "$J" -d "csrf=$C&tenant=$TENANT&back=/console/cdrs" "$B/console/tenant"
AFTER=$(curl -s -b "$J" "$B/console/cdrs" | grep -o 'after=[0-9]*' | head -1 | cut -d= -f2)
measure() {
  local label=$1 path=$2
  for _ in $(seq "$N"); do
    curl -s -o /dev/null -b "$J" -w '%{http_code} %{time_total}\n' "$B$path"
  done | awk -v label="$label" '
    $1 != 200 { bad++ } { t[NR] = $2 * 1000 }
    END { n = asort(t); printf "%-40s n=%d p50=%7.2f ms p99=%7.2f ms max=%7.2f ms non-200=%d\n",
          label, n, t[int(n * 0.5)], t[int(n * 0.99)], t[n], bad }'
}
measure "first page (50 rows, no filter)" "/console/cdrs"
measure "number filter" "/console/cdrs?number=1042"
measure "number + 7-day range" "/console/cdrs?number=1042&from=2026-01-05T00:00&to=2026-01-12T00:00"
measure "next page (keyset after)" "/console/cdrs?after=$AFTER"
measure "direction filter" "/console/cdrs?direction=OUTBOUND_CALL"
