#!/usr/bin/env bash
# Reading N hires back: `status`, `verify` and `report` on the file store and on PostgreSQL (a
# server started here on loopback), the same journals in both (`store copy`), timed side by side
# in one run; prints each time and the ratio postgres/files (goal: at most 1.3). The journals
# come from a cohort on a checklist of people's steps only (a sign-off and a hand-off), so
# making them needs no directory or mail server.
#   Usage: bench/store.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
python=/usr/bin/python3; [ -x "$python" ] || python=python3
cargo build --release --quiet
bin=$PWD/target/release/onboard

. bench/lib.sh


# A checklist of people's steps: each hire's run journals two waiting steps.
mkdir -p "$work/playbooks"
cat > "$work/playbooks/people.yaml" <<'YAML'
name: People's steps
steps:
  - id: laptop-cleaning
    sign_off:
      role: technician
      items: [Disk wiped and re-imaged]
      asset: {tag: "LT-{{ hire.id }}", serial: "S-{{ hire.id }}"}
  - id: laptop-handoff
    device_handoff:
      cleaning: laptop-cleaning
      asset: {tag: "LT-{{ hire.id }}", serial: "S-{{ hire.id }}"}
YAML
$python bench/gen_hires.py "$N" "$work/hires.csv"
files="$work/state"
export ONBOARD_NOW=2026-11-23T10:00:00Z
ONBOARD_STATE_DIR=$files $bin "$work/playbooks/people.yaml" --hires "$work/hires.csv" --jobs 4 \
  --no-prompt >/dev/null 2>&1 || true
start_postgres "$work/pg"
ONBOARD_STATE_PASSWORD_FILE=$STATE_PASSWORD_FILE $bin store copy --from "$files" --to "$STATE_URL" >/dev/null 2>&1

# Seconds for a command on a store (best of 3, output discarded).
best() { # label env... -- command...
  local best=""
  for _ in 1 2 3; do
    local t0 t1; t0=$(date +%s.%N)
    env "$@" >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    local s; s=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || (( $(echo "$s < $best" | bc -l) )); then best=$s; fi
  done
  echo "$best"
}
printf "%-8s %8s %10s %10s %7s\n" command hires files_s postgres_s ratio
for cmd in status verify report; do
  f=$(best ONBOARD_STATE_DIR="$files" "$bin" $cmd)
  p=$(best ONBOARD_STATE_URL="$STATE_URL" ONBOARD_STATE_PASSWORD_FILE="$STATE_PASSWORD_FILE" "$bin" $cmd)
  printf "%-8s %8d %10.3f %10.3f %7.2f\n" "$cmd" "$N" "$f" "$p" "$(echo "$p / $f" | bc -l)"
done
