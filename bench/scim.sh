#!/usr/bin/env bash
# Onboarding N hires into a SCIM application that enforces per-minute limits, scaled up tenfold
# from Slack's published ones (180 POST /Users and 600 writes a minute): 30 user creations and
# 100 writes a second, answering 429 with Retry-After beyond them (tests/scim_dialect.py on
# loopback). onboard is told the same limits (creates_per_minute, writes_per_minute) and keeps
# them with one limiter shared by its JOBS workers. Prints the failures (goal: 0), the requests
# per hire (goal: at most 6), the 429s, the total time, the floor those limits allow
# (N / 30 s, or the writes / 100 s if more) and the ratio time/floor (goal: at most 1.15).
# A benchmark, not a test: .ci/run does not run it.
#   Usage: bench/scim.sh [N] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
JOBS=${2:-8}
CREATES_PER_S=30
WRITES_PER_S=100
GROUPS=2
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
python=/usr/bin/python3; [ -x "$python" ] || python=python3
cargo build --release --quiet
bin=target/release/onboard
TOKEN=bench-scim-token

free_port() { $python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

port=$(free_port)
$python tests/scim_dialect.py --port "$port" --token "$TOKEN" \
  --rate "$CREATES_PER_S:$WRITES_PER_S" --group everyone --group engineering 2>/dev/null & pids+=($!)
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
echo "$TOKEN" > "$work/token"

$python bench/gen_hires.py "$N" "$work/hires.csv"

t0=$(date +%s.%N)
env ONBOARD_STATE_DIR="$work/state" ONBOARD_SCIM_CHAT_URL="http://127.0.0.1:$port" \
  ONBOARD_SCIM_CHAT_TOKEN_FILE="$work/token" \
  ONBOARD_SCIM_CHAT_CREATES_PER_MINUTE=$((CREATES_PER_S * 60)) \
  ONBOARD_SCIM_CHAT_WRITES_PER_MINUTE=$((WRITES_PER_S * 60)) \
  $bin bench/scim_checklist.yaml --hires "$work/hires.csv" --jobs "$JOBS" > "$work/out" 2>/dev/null || true
t1=$(date +%s.%N)

# What the application holds: users per hire, each group's members, and what it counted.
$python - "$port" "$TOKEN" "$N" "$t0" "$t1" "$CREATES_PER_S" "$WRITES_PER_S" "$GROUPS" "$JOBS" "$work/out" <<'PY'
import collections, json, re, sys, urllib.request
port, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0, t1, creates, writes, groups, jobs = (float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]),
                                        int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9]))
def get(path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    return json.load(urllib.request.urlopen(req))
stats, users = get("/_stats"), get("/_users")
per_hire = collections.Counter(u.get("externalId") for u in users)
once = sum(1 for i in range(n) if per_hire[f"B{i:06d}"] == 1)
members = [len(get(f"/_members/{get('/_group/' + g)}")) for g in ("everyone", "engineering")]
out = open(sys.argv[10], encoding="utf-8").read()
summary = re.search(r"(\d+) hires, (\d+) ok(?:, (\d+) failed)?", out)
ok = int(summary.group(2)) if summary else 0
failed = n - ok
took = t1 - t0
floor = max(n / creates, n * (1 + groups) / writes)
print(f"hires: {n}, jobs: {jobs}, limits: {creates} user creations and {writes} writes a second")
print(f"failures: {failed} ({ok} ok; {once} hires with exactly one user; members: "
      f"{members[0]} everyone, {members[1]} engineering)")
print(f"requests: {stats['requests']} ({stats['requests'] / n:.2f} per hire; "
      f"{stats['429']} answered 429)")
print(f"time: {took:.2f} s, floor: {floor:.2f} s, ratio time/floor: {took / floor:.3f} (goal: at most 1.15)")
if failed or once != n or members != [n, n]:
    print(out[-3000:], file=sys.stderr)
    sys.exit(1)
PY
