#!/usr/bin/env bash
# bench/soak.sh: a long run of both halves of the framework at once, to show
# that nothing grows: blkfwd --loop streams an emulated drive through an
# emulated 82599 pair to its checking receiver, while nvme-perf runs a mixed
# verified load on another emulated drive and deletes and recreates its I/O
# queue pair every --cycle N I/Os. Both write --stats JSON lines; each
# second's line carries the process RSS, the IOVA space mapped and every DMA
# pool's capacity/free/quarantined counts. At the end, per app and figure:
# the largest value of the first minute, of the last minute, their
# difference (the growth) and the largest of the run. Target: no growth.
# Minutes, not for CI.
set -euo pipefail

usage() {
    cat <<'U'
usage: bash bench/soak.sh [MINUTES] [--cycle N] [--keep DIR]
       bash bench/soak.sh --report DIR

 MINUTES    length of the run (default 10; at least 2, so that the first
            and the last minute are different samples)
 --cycle N  nvme-perf deletes and recreates its queue pair every N I/Os
            (default 500)
 --keep DIR keep the stats files and the apps' output in DIR
 --report DIR  no run: judge the stats files a --keep run left in DIR

Fails (exit 1) when an app fails or reports an error, or when from the
first minute to the last:
  rss_bytes grows by more than SOAK_RSS_TOLERANCE_KB (default 4096 KiB:
            allocator noise; a leak of one buffer per second passes it
            within minutes),
  iova_bytes, iova_mappings, iova_top, pool_capacity or pool_quarantined
            grow at all (tolerance 0: mappings and pools are made at start
            and given back; the queue cycles must give back theirs).
U
}

MINUTES=10 CYCLE=500 KEEP= REPORT=
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --cycle) CYCLE=${2:?--cycle needs a count}; shift 2 ;;
        --keep) KEEP=${2:?--keep needs a directory}; shift 2 ;;
        --report) REPORT=${2:?--report needs a directory}; shift 2 ;;
        -*) echo "bench/soak.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) MINUTES=$1; shift ;;
    esac
done
case "$MINUTES$CYCLE" in *[!0-9]*|'') echo "bench/soak.sh: MINUTES and --cycle take whole numbers" >&2; exit 2 ;; esac
[ "$MINUTES" -ge 2 ] || { echo "bench/soak.sh: MINUTES must be at least 2 (first and last minute are compared)" >&2; exit 2; }
[ "$CYCLE" -ge 1 ] || { echo "bench/soak.sh: --cycle must be at least 1" >&2; exit 2; }
command -v python3 >/dev/null || { echo "bench/soak.sh: python3 is needed to read the stats files" >&2; exit 2; }
RSS_TOL_KB=${SOAK_RSS_TOLERANCE_KB:-4096}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
status=0
if [ -n "$REPORT" ]; then
    [ -f "$REPORT/blkfwd.jsonl" ] || { echo "bench/soak.sh: $REPORT holds no blkfwd.jsonl; give the DIR of a --keep run" >&2; exit 2; }
    DIR=$(cd "$REPORT" && pwd)
else
cd "$ROOT"
cargo build --release --quiet -p apps --bin blkfwd --bin nvme-perf
BIN=$ROOT/target/release

if [ -n "$KEEP" ]; then
    mkdir -p "$KEEP"
    DIR=$(cd "$KEEP" && pwd)
else
    DIR=$(mktemp -d)
    trap 'rm -rf "$DIR"' EXIT
fi
SECS=$((MINUTES * 60))
echo "soak: $MINUTES min of blkfwd --loop and nvme-perf --cycle-queues $CYCLE at once; stats in $DIR"

"$BIN/blkfwd" --nvme emu:nvme,size=64M --loop --time "$SECS" --quiet \
    --stats "$DIR/blkfwd.jsonl" >"$DIR/blkfwd.out" 2>&1 &
BLKFWD=$!
"$BIN/nvme-perf" emu:nvme,size=64M --workload mixed --verify --qd 16 --time "$SECS" \
    --cycle-queues "$CYCLE" --stats "$DIR/nvme-perf.jsonl" >"$DIR/nvme-perf.out" 2>"$DIR/nvme-perf.err" &
PERF=$!
wait "$BLKFWD" || { echo "soak: blkfwd failed:"; tail -n 20 "$DIR/blkfwd.out"; status=1; }
wait "$PERF" || { echo "soak: nvme-perf failed:"; tail -n 20 "$DIR/nvme-perf.out" "$DIR/nvme-perf.err"; status=1; }
fi

python3 - "$DIR" "$RSS_TOL_KB" <<'PY' || status=1
import json, sys
d, rss_tol = sys.argv[1], int(sys.argv[2]) * 1024
# figure -> tolerated growth from the first minute's largest value to the
# last minute's.
limits = {"rss_bytes": rss_tol, "iova_bytes": 0, "iova_mappings": 0,
          "iova_top": 0, "pool_capacity": 0, "pool_quarantined": 0}
bad = []
for app in ("blkfwd", "nvme-perf"):
    try:
        lines = [json.loads(l) for l in open(f"{d}/{app}.jsonl")]
    except (OSError, ValueError) as e:
        print(f"{app}: stats unreadable: {e}"); bad.append(app); continue
    secs = [l for l in lines if l.get("type") == "second"]
    final = [l for l in lines if l.get("final")]
    if not secs or len(final) != 1:
        print(f"{app}: {len(secs)} per-second lines, {len(final)} final reports")
        bad.append(app); continue
    fin, end = final[0], secs[-1]["time_s"]
    first = [l for l in secs if l["time_s"] <= 60]
    last = [l for l in secs if l["time_s"] > end - 60]
    rate = "bytes_per_s" if app == "blkfwd" else "ios_per_s"
    r = lambda ls: sum(l[rate] for l in ls) / len(ls)
    print(f"{app}: {len(secs)} s sampled; {rate} first minute {r(first):.0f}, last minute "
          f"{r(last):.0f}; final ok={fin['ok']} errors={fin['errors']}"
          + (f" queue_cycles={fin['queue_cycles']}" if "queue_cycles" in fin else "")
          + (f" recv_missing={fin['recv_missing']} recv_mismatched={fin['recv_mismatched']}"
             if fin.get("recv_missing") is not None else ""))
    if not fin["ok"] or fin["errors"]:
        bad.append(f"{app} final report")
    print(f"  {'figure':<17}{'first min max':>15}{'last min max':>15}{'growth':>12}{'run max':>15}{'tolerance':>12}")
    for k, tol in limits.items():
        if any(l[k] is None for l in secs):
            print(f"  {k:<17}{'(not reported)':>15}"); continue
        a, b = max(l[k] for l in first), max(l[k] for l in last)
        g, m = b - a, max(l[k] for l in secs)
        flag = "" if g <= tol else "  <-- GROWS"
        print(f"  {k:<17}{a:>15}{b:>15}{g:>12}{m:>15}{tol:>12}{flag}")
        if g > tol:
            bad.append(f"{app} {k}")
if bad:
    print("soak: FAIL: " + ", ".join(bad)); sys.exit(1)
print("soak: no growth beyond the tolerances")
PY
exit $status
