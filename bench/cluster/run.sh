#!/usr/bin/env bash
# Issue 15 benchmark: two `tally serve` nodes behind Kamailio versus one node
# alone, both on PostgreSQL; and the cross-node fan-out latency (commit on
# node A -> event on a /wsi subscriber of node B). See README.md here.
#
#   bash bench/cluster/run.sh rates 100 200 300     # single vs cluster, per rate
#   bash bench/cluster/run.sh fanout                # /wsi latency, notify on and off
#
# Needs: release build (target/release/tally), sipp, kamailio, psql, curl,
# jq, and for `fanout` python3 with websockets + psycopg (bench/cluster/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${TALLY_BIN:-$ROOT/target/release/tally}
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
STEP_SECS=${STEP_SECS:-10}
TALK_MS=${TALK_MS:-1000}
BASE=${BASE_PORT:-27000}
PY=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/tally-cluster-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS tally_cbench_$$ WITH (FORCE)" >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

cpu_ticks() { # utime+stime of a pid and its children processes (Kamailio forks), in clock ticks
  local total=0 f
  for f in /proc/[0-9]*/stat; do
    { read -r -a st < "$f"; } 2>/dev/null || continue
    if [ "${st[0]}" = "$1" ] || [ "${st[3]}" = "$1" ]; then
      total=$((total + st[13] + st[14]))
    fi
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)

fresh_db() {
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS tally_cbench_$$ WITH (FORCE)" >/dev/null 2>&1
  psql "$PG/postgres" -qc "CREATE DATABASE tally_cbench_$$" >/dev/null
  DB="$PG/tally_cbench_$$"
}

# start_node N SIP_PORT HTTP_PORT NOTIFY(true|false)
start_node() {
  local n=$1 sip=$2 http=$3 notify=$4 dir="$WORK/node$1"
  mkdir -p "$dir"
  cat > "$dir/tally.toml" <<TOML
[cluster]
heartbeat_ms = 1000
lease_secs = 5
notify = $notify
[sip]
max_transactions = 1000000
max_transactions_per_source = 1000000
TOML
  RUST_LOG=warn "$BIN" serve --config "$dir/tally.toml" --node "$n" --database "$DB" \
    --data-dir "$dir" --sip-bind 127.0.0.1 --sip-port "$sip" --http-bind 127.0.0.1 \
    --http-port "$http" --admin-password bench-admin > "$dir/out" 2> "$dir/err" &
  PIDS+=($!)
  eval "NODE${n}_PID=$!"
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$http/api/health" >/dev/null 2>&1 && break; curl -s -o /dev/null "http://127.0.0.1:$http/" && break; sleep 0.1; done
}

start_kamailio() { # targets...
  : > "$WORK/ds.list"
  for t in "$@"; do echo "1 sip:$t" >> "$WORK/ds.list"; done
  kamailio -DD -E -f "$ROOT/deploy/kamailio/kamailio.cfg" -A "LISTEN=udp:127.0.0.1:$BASE" \
    -A "DISPATCHER_LIST=\"$WORK/ds.list\"" -A PING_SECS=1 -Y "$WORK" -P "$WORK/kam.pid" \
    -m 256 -M 16 > "$WORK/kamailio.log" 2>&1 &
  PIDS+=($!)
  KAM_PID=$!
  sleep 2
}

provision() { # http port -> TENANT, passwords in P1001/P2001
  local http=$1 token
  token=$(curl -fs "http://127.0.0.1:$http/api/login/oauth/token" -d grant_type=password \
    -d username=admin -d password=bench-admin | jq -r .access_token)
  TOKEN=$token
  TENANT=$(curl -fs -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "http://127.0.0.1:$http/api/tenants" -d '{"name":"Bench","sip_domain":"demo.tally.local"}' | jq -r .id)
  for ext in 1001 2001; do
    curl -fs -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      "http://127.0.0.1:$http/api/tenants/$TENANT/users" \
      -d "{\"extension\":\"$ext\",\"sip_password\":\"pw-$ext-bench\"}" >/dev/null
  done
}

register_and_answer() { # target
  sipp -sf "$ROOT/tests/sipp/register.xml" "$1" -i 127.0.0.1 -p $((BASE+10)) -s 2001 \
    -ap pw-2001-bench -key domain demo.tally.local -auth_uri demo.tally.local -m 1 \
    -timeout 10 -timeout_error -nostdin >/dev/null 2>&1
  sleep 1.5 # the other node follows the shared location within 500 ms
  sipp -sf "$ROOT/tests/sipp/cluster_uas.xml" -i 127.0.0.1 -p $((BASE+10)) -m 100000000 \
    -nostdin -mp $((BASE+500)) >/dev/null 2>&1 &
  UAS_PID=$!
  PIDS+=($UAS_PID)
}

cdrs() { psql "$DB" -Atc "SELECT count(*) FROM cdrs WHERE call_status = 'answered'"; }

# step TARGET RATE PORT -> prints a row; pids to measure in MEASURE
step() {
  local target=$1 rate=$2 port=$3 calls=$(( $2 * STEP_SECS )) before after t0 t1 ok
  before=$(cdrs)
  local w0; w0=$(psql "$DB" -Atc "SELECT pg_current_wal_lsn()")
  declare -A c0
  for p in $MEASURE; do c0[$p]=$(cpu_ticks "$p"); done
  t0=$(date +%s.%N)
  if sipp -sf "$ROOT/tests/sipp/cluster_uac.xml" "$target" -i 127.0.0.1 -p "$port" -s 2001 \
      -set caller 1001 -au 1001 -ap pw-1001-bench -auth_uri 2001@demo.tally.local \
      -m "$calls" -r "$rate" -d "$TALK_MS" -timeout $((STEP_SECS + 40)) -timeout_error -nostdin \
      -mp $((BASE+2000)) -trace_err -error_file "$WORK/uac-$rate-$port.err" >/dev/null 2>&1; then ok=0; else ok=1; fi
  t1=$(date +%s.%N)
  for _ in $(seq 100); do after=$(cdrs); [ "$after" -ge $((before + calls)) ] && break; sleep 0.1; done
  local cpu=""
  for p in $MEASURE; do cpu+=" $(echo "scale=3; ($(cpu_ticks "$p") - ${c0[$p]}) / $HZ" | bc)"; done
  local tally_cpu kam_cpu
  tally_cpu=$(echo "$cpu" | awk -v n="$TALLY_PIDS_N" '{s=0; for(i=1;i<=n;i++) s+=$i; print s}')
  kam_cpu=$(echo "$cpu" | awk -v n="$TALLY_PIDS_N" '{s=0; for(i=n+1;i<=NF;i++) s+=$i; print s}')
  local wal; wal=$(psql "$DB" -Atc "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$w0') / $calls)")
  local result=pass
  [ "$ok" = 0 ] && [ $((after - before)) -eq "$calls" ] || result="FAIL(sipp=$ok,cdrs=$((after-before)))"
  printf "%-8s %6s %7s %7s %10s %10s %12s %12s %10s %s\n" "$MODE" "$rate" "$calls" "$((after-before))" \
    "$tally_cpu" "$kam_cpu" "$(echo "scale=3; $tally_cpu * 1000 / $calls" | bc)" \
    "$(echo "scale=3; $kam_cpu * 1000 / $calls" | bc)" "$wal" "$result"
  [ "$result" = pass ]
}

rates() {
  echo "bench: $(nproc) cores, $STEP_SECS s per step, talk $TALK_MS ms, PostgreSQL, $(git -C "$ROOT" rev-parse --short HEAD)"
  printf "%-8s %6s %7s %7s %10s %10s %12s %12s %10s %s\n" mode rate calls cdrs tally_cpu_s kam_cpu_s tally_ms/call kam_ms/call wal_B/call result
  # One node alone, phones straight to it.
  MODE=single; fresh_db
  start_node 1 $((BASE+1)) $((BASE+101)) false
  provision $((BASE+101))
  register_and_answer 127.0.0.1:$((BASE+1))
  MEASURE="$NODE1_PID"; TALLY_PIDS_N=1
  local port=$((BASE+20))
  for r in "$@"; do step 127.0.0.1:$((BASE+1)) "$r" $port || break; port=$((port+1)); done
  kill "$NODE1_PID" "$UAS_PID"; sleep 1
  # Two nodes behind Kamailio.
  MODE=cluster; fresh_db
  start_node 1 $((BASE+1)) $((BASE+101)) true
  start_node 2 $((BASE+2)) $((BASE+102)) true
  provision $((BASE+101))
  sleep 2.5 # node 2 reloads the directory every 2 s
  start_kamailio 127.0.0.1:$((BASE+1)) 127.0.0.1:$((BASE+2))
  register_and_answer 127.0.0.1:$BASE
  MEASURE="$NODE1_PID $NODE2_PID $KAM_PID"; TALLY_PIDS_N=2
  port=$((BASE+40))
  for r in "$@"; do step 127.0.0.1:$BASE "$r" $port || break; port=$((port+1)); done
  psql "$DB" -Atc "SELECT 'calls per node: ' || string_agg(n || '=' || c, ' ') FROM (SELECT (cdr_id >> 12) & 1023 AS n, count(*) AS c FROM cdrs GROUP BY 1 ORDER BY 1) x"
}

fanout() {
  echo "fanout: commit on node 1 -> event on a /wsi subscriber of node 2 ($(git -C "$ROOT" rev-parse --short HEAD))"
  for notify in true false; do
    fresh_db
    start_node 1 $((BASE+1)) $((BASE+101)) $notify
    start_node 2 $((BASE+2)) $((BASE+102)) $notify
    provision $((BASE+101))
    sleep 2.5
    register_and_answer 127.0.0.1:$((BASE+1))
    "$PY" "$ROOT/bench/cluster/fanout.py" --ws "ws://127.0.0.1:$((BASE+102))/wsi" \
      --password bench-admin --tenant "$TENANT" --db "$DB" --seconds $((STEP_SECS + 6)) \
      --label "notify=$notify" > "$WORK/fanout-$notify.txt" &
    local py=$!
    sleep 2
    MEASURE="$NODE1_PID"; TALLY_PIDS_N=1; MODE="fan/$notify"
    step 127.0.0.1:$((BASE+1)) "${FANOUT_RATE:-50}" $((BASE+60)) >/dev/null || true
    wait $py || true
    cat "$WORK/fanout-$notify.txt"
    kill "$NODE1_PID" "$NODE2_PID" "$UAS_PID" 2>/dev/null; sleep 1
  done
}

case "${1:-rates}" in
  rates) shift || true; rates "${@:-100 200 300}" ;;
  fanout) fanout ;;
  *) echo "usage: $0 rates [RATE…] | fanout" >&2; exit 2 ;;
esac
