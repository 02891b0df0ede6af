#!/usr/bin/env bash
# A dry run of N hires on the embedded default: time and peak RSS.   Usage: bench/dry-run.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python=/usr/bin/python3; [ -x "$python" ] || python=python3
cargo build --release --quiet
$python bench/gen_hires.py "$N" "$work/hires.csv"
/usr/bin/time -f '%e %M' -o "$work/time" env ONBOARD_STATE_DIR="$work/state" \
  target/release/onboard bench/checklist.yaml --hires "$work/hires.csv" --dry-run > "$work/out" 2>/dev/null
read -r secs kb < "$work/time"
printf 'dry run of %d hires: %.2f s, peak RSS %.1f MB (%d hires planned)\n' "$N" "$secs" "$(echo "$kb/1024" | bc -l)" \
  "$(grep -c 'would change' "$work/out")"
