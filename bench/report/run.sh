#!/usr/bin/env bash
# Report benchmark: `goreplay report` on a RECORDS-record .gor file.
#
#   bench/report/run.sh [RECORDS=1000000]
#
# Prints records/second, MB/second and peak memory (max RSS) for
#   1. a complete file (types 1, 2 and 3; 5% mismatches, 1% no reply), text output;
#   2. the same with --json and --html;
#   3. a file with no replayed responses at all (every request waits: the
#      join window's worst case) with the default --pending-window 100000,
#      and with --pending-window 10000.
# Needs python3 and /usr/bin/time. SKIP_BUILD=1 uses an existing release
# build; GOREPLAY=path picks the binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS=${1:-1000000}
WORK=$(mktemp -d /tmp/report-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if [[ -z "${SKIP_BUILD:-}" && -z "${GOREPLAY:-}" ]]; then
    swift build -c release --product goreplay 2>&1 | tail -1
fi
BIN=${GOREPLAY:-.build/release/goreplay}

python3 bench/report/make_report_gor.py "$RECORDS" "$WORK/full.gor"
python3 bench/report/make_report_gor.py "$RECORDS" "$WORK/unanswered.gor" --no-replayed

measure() {
    local label=$1 file=$2
    shift 2
    /usr/bin/time -f '%e %M %U %S' -o "$WORK/time" "$BIN" report "$@" "$file" > "$WORK/out" 2> "$WORK/err" || {
        echo "$label: goreplay report failed: $(tail -3 "$WORK/err")" >&2
        exit 1
    }
    read -r elapsed rss user sys < "$WORK/time"
    local bytes
    bytes=$(stat -c %s "$file")
    python3 - "$label" "$RECORDS" "$bytes" "$elapsed" "$rss" "$user" "$sys" <<'PY'
import sys
label, records, size, elapsed, rss, user, sys_ = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
elapsed = max(elapsed, 0.01)
print(f"{label}: {records} records, {size / 1e6:.0f} MB in {elapsed:.2f} s = {records / elapsed:,.0f} records/s, "
      f"{size / 1e6 / elapsed:.0f} MB/s, CPU {user + sys_:.2f} s, peak RSS {rss / 1024:.1f} MiB")
PY
}

echo "goreplay report benchmark, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
measure "complete, text" "$WORK/full.gor"
head -2 "$WORK/out"
measure "complete, --json --html" "$WORK/full.gor" --json --html "$WORK/report.html"
measure "no replies, window 100000" "$WORK/unanswered.gor"
grep -o 'note: [0-9]* requests left the join window.*' "$WORK/out" || true
measure "no replies, window 10000" "$WORK/unanswered.gor" --pending-window 10000
