#!/usr/bin/env bash
# The board of `onboard serve` with N hires in the store (default 1000), under C concurrent
# clients (default 50) for S seconds (default 20), measured with wrk (Debian's `wrk`), side by
# side with the same bytes served as a static file by Python's threading HTTP server in the
# same run. Prints requests/s and p50/p99 latency of both, and the ratios.
# Goal: the board's p99 under 100 ms on this machine.
#   Usage: bench/serve.sh [N] [CLIENTS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
CLIENTS=${2:-50}
SECONDS_=${3:-20}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
python=/usr/bin/python3; [ -x "$python" ] || python=python3
cargo build --release --quiet
bin=$PWD/target/release/onboard
free_port() { $python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export ONBOARD_STATE_DIR=$work/state HOME=$work

echo "Onboarding $N hires on the embedded default (the store the board reads)..."
$python bench/gen_hires.py "$N" "$work/hires.csv"
"$bin" bench/checklist.yaml --hires "$work/hires.csv" -j 8 >/dev/null 2>&1 || true
[ "$(ls "$work/state/journal" | grep -c jsonl)" -ge "$N" ] || { echo "the cohort did not run" >&2; exit 1; }

# One IT account in the embedded directory, to sign in with.
$python - "$work/state/directory.ldif" <<'PY'
import base64, hashlib, os, sys
path = sys.argv[1]
salt = os.urandom(8)
ssha = "{SSHA}" + base64.b64encode(hashlib.sha1(b"bench-password" + salt).digest() + salt).decode()
text = open(path, encoding="utf-8").read()
text = text.replace("cn: it-staff\n", "cn: it-staff\nmember: uid=bench,ou=people,dc=example,dc=org\n", 1)
text += f"\ndn: uid=bench,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: bench\ncn: Bench\nsn: Bench\nuserPassword: {ssha}\n"
open(path, "w", encoding="utf-8").write(text)
PY

port=$(free_port)
"$bin" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" & pids+=($!)
for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
base="http://127.0.0.1:$port"
jar=$work/cookies
csrf=$(curl -s -c "$jar" "$base/signin" | grep -o 'name="csrf" value="[^"]*"' | sed 's/.*value="//;s/"$//')
curl -s -o /dev/null -b "$jar" -c "$jar" --data-urlencode login=bench \
  --data-urlencode password=bench-password --data-urlencode "csrf=$csrf" "$base/signin"
cookie=$(awk '$6 == "onboard" {print "onboard=" $7}' "$jar")
[ -n "$cookie" ] || { echo "could not sign in: $(cat "$work/serve.log")" >&2; exit 1; }
mkdir -p "$work/static"
curl -s -H "Cookie: $cookie" "$base/board" > "$work/static/board.html"
rows=$(grep -c '<tr class="state-' "$work/static/board.html" || true)
[ "$rows" -ge "$N" ] || { echo "the board shows $rows hires, not $N" >&2; exit 1; }
bytes=$(wc -c < "$work/static/board.html")

sport=$(free_port)
(cd "$work/static" && exec $python -m http.server "$sport" --bind 127.0.0.1 >/dev/null 2>&1) & pids+=($!)
for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/"$sport") 2>/dev/null && break; sleep 0.05; done

measure() { # url [header] -> "req/s p50_ms p99_ms"
  local out
  if [ -n "${2:-}" ]; then
    out=$(wrk -t 2 -c "$CLIENTS" -d "${SECONDS_}s" --latency -H "$2" "$1")
  else
    out=$(wrk -t 2 -c "$CLIENTS" -d "${SECONDS_}s" --latency "$1")
  fi
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "$rps $(ms "$p50") $(ms "$p99")"
}
ms() { # wrk's 12.3ms / 1.2s / 800us -> milliseconds
  $python -c "
import re,sys; v=sys.argv[1]; n,u=re.match(r'([0-9.]+)(us|ms|s)',v).groups(); n=float(n)
print(round(n/1000 if u=='us' else n*1000 if u=='s' else n, 2))" "$1"
}

echo "Board: $N hires, $bytes bytes; $CLIENTS clients for ${SECONDS_} s each (wrk)."
read -r b_rps b_p50 b_p99 < <(measure "$base/board" "Cookie: $cookie")
read -r s_rps s_p50 s_p99 < <(measure "http://127.0.0.1:$sport/board.html")
printf '%-34s %10s %10s %10s\n' "" "req/s" "p50 ms" "p99 ms"
printf '%-34s %10s %10s %10s\n' "onboard serve /board" "$b_rps" "$b_p50" "$b_p99"
printf '%-34s %10s %10s %10s\n' "static file (python http.server)" "$s_rps" "$s_p50" "$s_p99"
$python - "$b_rps" "$s_rps" "$b_p99" "$s_p99" <<'PY'
import sys
b_rps, s_rps, b_p99, s_p99 = map(float, sys.argv[1:])
print(f"ratio board/static: throughput {b_rps / s_rps:.2f}, p99 {b_p99 / s_p99:.2f}")
print(f"goal p99 < 100 ms: {'met' if b_p99 < 100 else 'NOT met'} ({b_p99} ms)")
PY
