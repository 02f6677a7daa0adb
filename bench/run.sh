#!/usr/bin/env bash
# SIPp load harness for `tally serve` (see bench/README.md).
#
# Starts a release `tally serve` on loopback with a fresh data directory,
# provisions a tenant and two extensions over REST, registers the callee
# (a SIPp UAS that answers every call), then places calls at a rising
# rate (answer, 1 s talk, caller hangs up). A step passes when SIPp saw
# every call succeed and the PBX committed exactly one CDR per call (REST
# count, and the answered count in the SQLite file). Reports the highest
# passing rate and the server's peak RSS (VmHWM).
#
# Usage: bench/run.sh [RATES...]        (calls per second; default below)
# Env:   STEP_SECS (calls placed per step = rate * STEP_SECS, default 10)
#        TALLY_BIN (default: target/release/tally, built if missing)
# Needs: sipp (sip-tester), curl, jq, sqlite3. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(100 200 400 600 700 800 900 1000 1100 1200 1400 1600)
STEP_SECS=${STEP_SECS:-10}
TALLY_BIN=${TALLY_BIN:-target/release/tally}
SCENARIOS=$PWD/bench/sipp
TESTS_SIPP=$PWD/tests/sipp
DOMAIN=bench.tally.local
ADMIN_PASSWORD=bench-admin-password
SIP_PORT=${SIP_PORT:-25060}
HTTP_PORT=${HTTP_PORT:-25087}
UAS_PORT=${UAS_PORT:-25070}
UAC_BASE_PORT=${UAC_BASE_PORT:-25100}

for tool in sipp curl jq sqlite3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 2; }
done
if [ ! -x "$TALLY_BIN" ]; then
  cargo build --release --locked -p tally
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tally-bench.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "bench: kept $WORK"; fi
}
trap cleanup EXIT

# The server: release build, loopback, fresh data directory, quiet logs.
RUST_LOG=${RUST_LOG:-warn} "$TALLY_BIN" serve --data-dir "$WORK/data" \
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

# The callee phone: register 2001 from UAS_PORT, then answer every call there.
(cd "$WORK" && sipp -sf "$TESTS_SIPP/register.xml" 127.0.0.1:"$SIP_PORT" \
  -i 127.0.0.1 -p "$UAS_PORT" -m 1 -s 2001 -ap bench-pw-2001 \
  -key domain "$DOMAIN" -auth_uri "$DOMAIN" -nostdin -timeout 10 -timeout_error \
  >/dev/null 2>&1) || { echo "bench: REGISTER failed" >&2; exit 1; }
(cd "$WORK" && exec sipp -sf "$TESTS_SIPP/uas.xml" 127.0.0.1:"$SIP_PORT" \
  -i 127.0.0.1 -p "$UAS_PORT" -mp 26000 -nostdin \
  -trace_err -error_file uas-errors.txt >/dev/null 2>&1) &
PIDS+=("$!")
sleep 0.5

echo "bench: $("$TALLY_BIN" --version 2>/dev/null || echo tally), $(nproc) cores, $STEP_SECS s of calls per step"
printf '%8s %8s %8s %8s %8s %10s %s\n' rate calls ok failed cdrs rss_kb result
TOTAL=0
BEST=0
STEP=0
for rate in "${RATES[@]}"; do
  STEP=$((STEP + 1))
  calls=$((rate * STEP_SECS))
  port=$((UAC_BASE_PORT + STEP))
  stat="$WORK/uac-$rate.csv"
  # Each step from its own port: SIPp numbers branches from 1 again.
  set +e
  (cd "$WORK" && sipp -sf "$SCENARIOS/uac.xml" 127.0.0.1:"$SIP_PORT" \
    -i 127.0.0.1 -p "$port" -mp $((27000 + STEP * 10)) \
    -s 2001 -set caller 1001 -au 1001 -ap bench-pw-1001 -key domain "$DOMAIN" \
    -auth_uri "2001@$DOMAIN" \
    -r "$rate" -m "$calls" -l $((rate * 20)) -recv_timeout 10000 \
    -timeout $((STEP_SECS * 4 + 30)) -nostdin \
    -trace_stat -stf "$stat" -fd 60 \
    -trace_err -error_file "uac-$rate-errors.txt" >/dev/null 2>&1)
  rc=$?
  set -e
  ok=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="SuccessfulCall(C)") c=i} END{print $c+0}' "$stat")
  failed=$(awk -F';' 'NR==1{for(i=1;i<=NF;i++) if($i=="FailedCall(C)") c=i} END{print $c+0}' "$stat")
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
  answered=$(sqlite3 "$WORK/data/tally.db" "SELECT count(*) FROM cdrs WHERE call_status = 'answered'")
  if [ "$rc" -eq 0 ] && [ "$ok" -eq "$calls" ] && [ "$failed" -eq 0 ] \
     && [ "$cdrs" -eq "$TOTAL" ] && [ "$answered" -eq "$TOTAL" ]; then
    result=pass
    BEST=$rate
  else
    result="FAIL(sipp=$rc,answered=$answered)"
  fi
  rss=$(awk '/VmRSS/{print $2}' "/proc/$TALLY_PID/status")
  printf '%8s %8s %8s %8s %8s %10s %s\n' "$rate" "$calls" "$ok" "$failed" "$cdrs" "$rss" "$result"
  [ "$result" = pass ] || break
done

RSS=$(awk '/VmHWM/{print $2, $3}' "/proc/$TALLY_PID/status")
kill -TERM "$TALLY_PID"
wait "$TALLY_PID" 2>/dev/null || true
echo "bench: highest rate with 0 failed calls and one CDR per call: $BEST calls/s"
echo "bench: calls placed: $TOTAL; tally peak RSS (VmHWM): $RSS"
