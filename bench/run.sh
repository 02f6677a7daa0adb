#!/usr/bin/env bash
# SIPp load harness for `tally serve` (see bench/README.md).
#
# Starts a release `tally serve` on loopback with a fresh database,
# provisions a tenant and two extensions over REST, registers the callee
# (a SIPp UAS that answers every call), then places calls at a rising
# rate (answer, TALK_MS of talk, caller hangs up). A step passes when SIPp
# saw every call succeed and the PBX committed exactly one CDR per call
# (REST count, and the answered count in the database).
#
# Per step it reports the server's CPU-seconds (utime + stime from
# /proc/PID/stat), calls per CPU-second, context switches per call (every
# thread's, from /proc/PID/task/*/status), peak RSS during the step (VmHWM,
# reset at the step's start through /proc/PID/clear_refs) and RSS at its
# end, and the datagrams the kernel dropped on the SIP socket's receive
# buffer (/proc/PID/net/udp `drops`) and on every UDP socket
# (/proc/net/snmp `RcvbufErrors`, SIPp's included).
#
# Usage: bench/run.sh [RATES...]        (calls per second; default below)
# Env:   STEP_SECS  seconds of calls per step (calls = rate * STEP_SECS; 10)
#        TALK_MS    talk time of each call (default 1000)
#        REPEAT     run each rate this many times (default 1)
#        NO_STOP=1  go on after a failing step
#        LONG_TALK=RATE:TALK_S:SECS  after the steps, one long-talk step:
#                   RATE calls/s for SECS s, each talking TALK_S s; reports
#                   the concurrent calls reached and the RSS (and PSS) there
#        TALLY_DATABASE=postgres://user@host:port/db  run on PostgreSQL: a
#                   fresh database `tally_bench_<pid>` is created on that
#                   server (and dropped at the end); default SQLite
#        TALLY_BIN  (default: target/release/tally, built if missing)
#        COMMIT     the commit to print for TALLY_BIN (default: HEAD)
#        EXTRA_TOML more of the server's configuration (TOML after its
#                   [sip] section, e.g. '[events]\ncommit_linger_ms = 5')
#        SIP_PORT, HTTP_PORT, UAS_PORT, UAC_BASE_PORT, MEDIA_PORT  the ports
#                   (defaults 25060, 25087, 25070, 25100, 26000): set them
#                   to run two harnesses on one machine
# Needs: sipp (sip-tester), curl, jq, sqlite3 (psql for PostgreSQL).
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(100 200 400 600 700 800 900 1000 1100 1200 1400 1600)
STEP_SECS=${STEP_SECS:-10}
TALK_MS=${TALK_MS:-1000}
REPEAT=${REPEAT:-1}
TALLY_BIN=${TALLY_BIN:-target/release/tally}
SCENARIOS=$PWD/bench/sipp
TESTS_SIPP=$PWD/tests/sipp
DOMAIN=bench.tally.local
ADMIN_PASSWORD=bench-admin-password
SIP_PORT=${SIP_PORT:-25060}
HTTP_PORT=${HTTP_PORT:-25087}
UAS_PORT=${UAS_PORT:-25070}
UAC_BASE_PORT=${UAC_BASE_PORT:-25100}
# SIPp's media ports: the UAS at MEDIA_PORT, the callers from MEDIA_PORT+1000.
MEDIA_PORT=${MEDIA_PORT:-26000}
CLK_TCK=$(getconf CLK_TCK)

for tool in sipp curl jq sqlite3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 2; }
done
if [ ! -x "$TALLY_BIN" ]; then
  cargo build --release --locked -p tally
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tally-bench.XXXXXX")
PIDS=()
PG_ADMIN=""
PG_DB=""
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$PG_DB" ]; then
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "bench: kept $WORK"; fi
}
trap cleanup EXIT

DB_ARGS=()
DB_NAME=sqlite
if [ -n "${TALLY_DATABASE:-}" ]; then
  command -v psql >/dev/null || { echo "bench: psql is not installed" >&2; exit 2; }
  PG_ADMIN=$TALLY_DATABASE
  PG_DB=tally_bench_$$
  psql -q "$PG_ADMIN" -c "CREATE DATABASE $PG_DB" >/dev/null
  # The server's URL: the admin URL with its database path replaced.
  base=${PG_ADMIN%%\?*}
  scheme_rest=${base#*://}
  host=${scheme_rest%%/*}
  PG_URL="${base%%://*}://$host/$PG_DB"
  DB_ARGS=(--database "$PG_URL")
  DB_NAME=postgres
fi

answered_cdrs() {
  local sql="SELECT count(*) FROM cdrs WHERE call_status = 'answered'"
  if [ -n "$PG_DB" ]; then
    psql -qtA "$PG_URL" -c "$sql"
  else
    sqlite3 "$WORK/data/tally.db" "$sql"
  fi
}

# Every call comes from 127.0.0.1: lift the per-source (and total) caps
# on server transactions (sip.max_transactions*, default 2,000 per source,
# about 30 calls/s from one address), or the PBX answers 503 from ~30
# calls/s on. Builds from before the caps have no such keys: no file.
CONFIG_ARGS=()
if grep -q -a max_transactions_per_source "$TALLY_BIN"; then
  printf '[sip]\nmax_transactions = 10000000\nmax_transactions_per_source = 10000000\n%b\n' \
    "${EXTRA_TOML:-}" >"$WORK/tally.toml"
  CONFIG_ARGS=(--config "$WORK/tally.toml")
fi

# The server: release build, loopback, fresh database, quiet logs.
RUST_LOG=${RUST_LOG:-warn} "$TALLY_BIN" serve "${CONFIG_ARGS[@]}" --data-dir "$WORK/data" "${DB_ARGS[@]}" \
  --sip-bind 127.0.0.1 --sip-port "$SIP_PORT" \
  --http-bind 127.0.0.1 --http-port "$HTTP_PORT" \
  --admin-password "$ADMIN_PASSWORD" >"$WORK/tally.out" 2>"$WORK/tally.log" &
TALLY_PID=$!
PIDS+=("$TALLY_PID")
API=http://127.0.0.1:$HTTP_PORT
for _ in $(seq 1 100); do
  curl -s -o /dev/null "$API/api/cdrs" && break
  sleep 0.1
done

# Provisioning over REST.
TOKEN=$(curl -fsS "$API/api/login/oauth/token" \
  --data-urlencode grant_type=password --data-urlencode username=admin \
  --data-urlencode "password=$ADMIN_PASSWORD" | jq -r .access_token)
AUTH=(-H "Authorization: Bearer $TOKEN")
TENANT=$(curl -fsS "${AUTH[@]}" -H 'Content-Type: application/json' "$API/api/tenants" \
  -d "{\"name\":\"Bench\",\"sip_domain\":\"$DOMAIN\"}" | jq -r .id)
for ext in 1001 2001; do
  curl -fsS -o /dev/null "${AUTH[@]}" -H 'Content-Type: application/json' \
    "$API/api/tenants/$TENANT/users" \
    -d "{\"extension\":\"$ext\",\"sip_password\":\"bench-pw-$ext\",\"display_name\":\"Bench $ext\"}"
done

cdr_count() {
  curl -fsS "${AUTH[@]}" -H "X-Tenant-Id: $TENANT" "$API/api/cdrs?top=1" | jq -r .count
}

# The server's CPU time so far, in clock ticks (utime + stime: fields 14
# and 15 of /proc/PID/stat, counted after the ")" that ends the name).
cpu_ticks() {
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$TALLY_PID/stat"
}
status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$TALLY_PID/status"; }
pss_kb() { awk '/^Pss:/ { print $2 }' "/proc/$TALLY_PID/smaps_rollup" 2>/dev/null || echo 0; }
# Datagrams dropped on the SIP socket (its `drops` column) and on all UDP
# sockets of the host (RcvbufErrors).
sock_drops() {
  local port_hex
  port_hex=$(printf '%04X' "$SIP_PORT")
  awk -v p=":$port_hex" '$2 ~ p"$" { d += $NF } END { print d + 0 }' "/proc/$TALLY_PID/net/udp"
}
rcvbuf_errors() {
  awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }' /proc/net/snmp
}
# Context switches of all the server's threads (voluntary and not): about
# one per wake-up, the cost that dominates at low rates (issue 18). A
# thread that exited takes its count with it, so this is a lower bound.
ctx_switches() {
  cat /proc/"$TALLY_PID"/task/*/status 2>/dev/null \
    | awk '/^(non)?voluntary_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}
reset_peak() { echo 5 >"/proc/$TALLY_PID/clear_refs" 2>/dev/null || true; }

# The callee phone: register 2001 from UAS_PORT, then answer every call there.
(cd "$WORK" && sipp -sf "$TESTS_SIPP/register.xml" 127.0.0.1:"$SIP_PORT" \
  -i 127.0.0.1 -p "$UAS_PORT" -m 1 -s 2001 -ap bench-pw-2001 \
  -key domain "$DOMAIN" -auth_uri "$DOMAIN" -nostdin -timeout 10 -timeout_error \
  >/dev/null 2>&1) || { echo "bench: REGISTER failed" >&2; exit 1; }
(cd "$WORK" && exec sipp -sf "$TESTS_SIPP/uas.xml" 127.0.0.1:"$SIP_PORT" \
  -i 127.0.0.1 -p "$UAS_PORT" -mp "$MEDIA_PORT" -nostdin \
  -trace_err -error_file uas-errors.txt >/dev/null 2>&1) &
PIDS+=("$!")
sleep 0.5

echo "bench: $("$TALLY_BIN" --version 2>/dev/null || echo tally), commit ${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo "?")}, $DB_NAME, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $STEP_SECS s steps, talk $TALK_MS ms"
printf '%6s %6s %6s %6s %6s %7s %6s %8s %8s %8s %6s %6s %7s %s\n' \
  rate calls ok failed cdrs cpu_s cpu% calls/cpu peak_mb end_mb drops rcvbuf cs/call result
TOTAL=0
BEST=0
STEP=0

# place_calls RATE CALLS TALK_MS LIMIT: one SIPp UAC run; sets rc, ok, failed.
place_calls() {
  local rate=$1 calls=$2 talk=$3 limit=$4 wait_s=$5
  STEP=$((STEP + 1))
  local port=$((UAC_BASE_PORT + STEP))
  local stat="$WORK/uac-$STEP-$rate.csv"
  # Each step from its own port: SIPp numbers branches from 1 again.
  set +e
  (cd "$WORK" && sipp -sf "$SCENARIOS/uac.xml" 127.0.0.1:"$SIP_PORT" \
    -i 127.0.0.1 -p "$port" -mp $((MEDIA_PORT + 1000 + (STEP % 100) * 10)) \
    -s 2001 -set caller 1001 -au 1001 -ap bench-pw-1001 -key domain "$DOMAIN" \
    -auth_uri "2001@$DOMAIN" -d "$talk" \
    -r "$rate" -m "$calls" -l "$limit" -recv_timeout 10000 \
    -timeout "$wait_s" -nostdin \
    -trace_stat -stf "$stat" -fd 60 \
    -trace_err -error_file "uac-$STEP-$rate-errors.txt" >/dev/null 2>&1)
  rc=$?
  set -e
  ok=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="SuccessfulCall(C)") c=i} END{print $c+0}' "$stat")
  failed=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="FailedCall(C)") c=i} END{print $c+0}' "$stat")
}

# check_cdrs CALLS: waits for the CDRs, sets cdrs, answered, result.
check_cdrs() {
  local calls=$1
  TOTAL=$((TOTAL + calls))
  # Every call ended: its CDR is committed within moments.
  cdrs=0
  for _ in $(seq 1 100); do
    cdrs=$(cdr_count)
    [ "$cdrs" -ge "$TOTAL" ] && break
    sleep 0.1
  done
  sleep 0.3
  cdrs=$(cdr_count)
  answered=$(answered_cdrs)
  if [ "$rc" -eq 0 ] && [ "$ok" -eq "$calls" ] && [ "$failed" -eq 0 ] \
     && [ "$cdrs" -eq "$TOTAL" ] && [ "$answered" -eq "$TOTAL" ]; then
    result=pass
  else
    result="FAIL(sipp=$rc,answered=$answered)"
  fi
}

STOPPED=""
for rate in "${RATES[@]}"; do
  for _ in $(seq 1 "$REPEAT"); do
    calls=$((rate * STEP_SECS))
    reset_peak
    cpu0=$(cpu_ticks); drops0=$(sock_drops); rcv0=$(rcvbuf_errors); t0=$(date +%s.%N)
    cs0=$(ctx_switches)
    place_calls "$rate" "$calls" "$TALK_MS" $((rate * (20 + TALK_MS / 1000))) $((STEP_SECS * 4 + 30 + TALK_MS / 1000))
    check_cdrs "$calls"
    cpu1=$(cpu_ticks); drops1=$(sock_drops); rcv1=$(rcvbuf_errors); t1=$(date +%s.%N)
    cs1=$(ctx_switches)
    peak=$(status_kb VmHWM); end=$(status_kb VmRSS)
    read -r cpu_s pct per_cpu < <(awk -v a="$cpu0" -v b="$cpu1" -v t="$CLK_TCK" -v c="$calls" \
      -v w0="$t0" -v w1="$t1" 'BEGIN { s = (b - a) / t; if (s <= 0) s = 1 / t;
        printf "%.2f %.0f %.0f\n", s, 100 * s / (w1 - w0), c / s }')
    cs_call=$(awk -v a="$cs0" -v b="$cs1" -v c="$calls" 'BEGIN { printf "%.1f", (b - a) / c }')
    printf '%6s %6s %6s %6s %6s %7s %6s %8s %8s %8s %6s %6s %7s %s\n' "$rate" "$calls" "$ok" \
      "$failed" "$cdrs" "$cpu_s" "$pct" "$per_cpu" $((peak / 1024)) $((end / 1024)) \
      $((drops1 - drops0)) $((rcv1 - rcv0)) "$cs_call" "$result"
    if [ "$result" = pass ]; then
      [ "$rate" -gt "$BEST" ] && BEST=$rate
    elif [ -z "${NO_STOP:-}" ]; then
      STOPPED=1
      break
    fi
  done
  [ -z "$STOPPED" ] || break
done

if [ -n "${LONG_TALK:-}" ] && [ -z "$STOPPED" ]; then
  IFS=: read -r lt_rate lt_talk lt_secs <<<"$LONG_TALK"
  lt_calls=$((lt_rate * lt_secs))
  expected=$((lt_rate * (lt_secs < lt_talk ? lt_secs : lt_talk)))
  rss0=$(status_kb VmRSS)
  reset_peak
  cpu0=$(cpu_ticks)
  # Sample RSS while the calls are up: the peak is just before the first
  # ones hang up (or the last is placed).
  (
    while sleep 1; do
      echo "$(status_kb VmRSS) $(pss_kb)" >>"$WORK/long-talk-rss.txt" || break
    done
  ) &
  sampler=$!
  PIDS+=("$sampler")
  place_calls "$lt_rate" "$lt_calls" $((lt_talk * 1000)) $((expected * 2 + 1000)) $((lt_secs * 2 + lt_talk + 60))
  kill "$sampler" 2>/dev/null || true
  check_cdrs "$lt_calls"
  cpu1=$(cpu_ticks)
  read -r max_rss max_pss < <(sort -n "$WORK/long-talk-rss.txt" | tail -1)
  echo "bench: long talk $lt_rate calls/s x $lt_secs s, $lt_talk s each: ~$expected concurrent calls;" \
    "RSS $((rss0 / 1024)) MB before, peak $((max_rss / 1024)) MB (PSS $((max_pss / 1024)) MB)," \
    "$(( (max_rss - rss0) * 1024 / (expected > 0 ? expected : 1) )) bytes per concurrent call;" \
    "cpu $(awk -v a="$cpu0" -v b="$cpu1" -v t="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / t }') s; $result"
fi

RSS=$(awk '/VmHWM/{print $2, $3}' "/proc/$TALLY_PID/status")
kill -TERM "$TALLY_PID"
wait "$TALLY_PID" 2>/dev/null || true
echo "bench: highest rate with 0 failed calls and one CDR per call: $BEST calls/s"
echo "bench: calls placed: $TOTAL; tally peak RSS of the last step (VmHWM): $RSS"
