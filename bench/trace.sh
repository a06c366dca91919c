#!/usr/bin/env bash
# bench/trace.sh: what the descriptor trace costs (issue 13).
#  1. tracing off: instructions per I/O (bench/nvme.sh) and per forwarded
#     packet (bench/fwd.sh) of this tree against a base revision built from
#     git (default db1012b, the commit before the trace hooks);
#  2. tracing on against off: nvme-perf IOPS (inline and threaded
#     controller) and fwd Mpps, runs interleaved off/on in pairs;
#  3. events per second: written by the apps (their trace summary line over
#     their run time) and what the recording path alone takes
#     (drivers/examples/trace_rate.rs).
set -euo pipefail

usage() {
    cat <<'U'
usage: bench/trace.sh [--base REV] [--pairs N] [--time S] [--trace-events N]
                      [--only off|on|rate] [--quick] [--keep DIR]

 --base REV   git revision to compare with tracing off (default db1012b,
              the commit before the trace hooks); its source is taken with
              git archive into target/bench-base/REV and built there (kept,
              so a second run does not build it again). --base hooks-out:
              this tree's HEAD with the hooks compiled out (Tap::is_on
              false and Tap::record empty, so every hook is dead code): the
              trace's own cost when off, apart from other merged work
 --pairs N    off/on pairs per workload in part 2 (default 5, at least 2)
 --time S     seconds per run in part 2 (default 2)
 --trace-events N
              events kept per device in the traced runs (default 20000000,
              about 2.6 GB at most: enough that a run of the default length
              drops nothing; a run that dropped says so)
 --only PART  run one part: off (1), on (2) or rate (3)
 --quick      fewer callgrind I/Os and frames, 3 pairs of 1 s (about 4
              minutes instead of 9)
 --keep DIR   keep every log and callgrind file in DIR (default: a temp
              dir, removed)

Part 1 runs bench/nvme.sh and bench/fwd.sh on this tree and with --tree on
the base (both without --trace): callgrind counts, so they do not depend
on the machine's load. The base may differ from this tree by more than the
trace (other merged work): the table says which revision was measured.

Part 2 loads, each run once without and once with --trace FILE.jsonl, in
turn (off on off on ...; on a shared machine load drifts, and each pair's
ratio compares runs made seconds apart):
  nvme-perf emu:nvme,size=64M,mode=inline --qd 64 --time S   (IOPS)
  nvme-perf emu:nvme,size=64M --qd 64 --time S               (IOPS, threaded)
  fwd emu:ixgbe,wire=loop x2 --batch 32 --inject 256 --time S (Mpps)
Per workload: each pair's on/off ratio, their median and range, and the
events the traced runs wrote per second of run time (the app's "trace: N
events written" line over the run time it reports).

Part 3: Tap::record in a loop (16-byte payload) on 1 and on 2 threads,
each thread its own device: events per second and ns per event.
U
}

BASE=db1012b PAIRS=5 T=2 EVENTS=20000000 ONLY= QUICK= KEEP=
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --base) BASE=${2:?--base needs a git revision}; shift 2 ;;
        --pairs) PAIRS=${2:?--pairs needs a count}; shift 2 ;;
        --time) T=${2:?--time needs seconds}; shift 2 ;;
        --trace-events) EVENTS=${2:?--trace-events needs a count}; shift 2 ;;
        --only) ONLY=${2:?--only needs off, on or rate}; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --keep) KEEP=${2:?--keep needs a directory}; shift 2 ;;
        *) echo "bench/trace.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ -n "$QUICK" ]; then PAIRS=3 T=1; fi
for v in "$PAIRS" "$T" "$EVENTS"; do
    [[ "$v" =~ ^[0-9]+$ ]] || { echo "bench/trace.sh: '$v' is not a whole number" >&2; exit 2; }
done
[ "$PAIRS" -ge 2 ] || { echo "bench/trace.sh: --pairs must be at least 2" >&2; exit 2; }
[ "$T" -ge 1 ] || { echo "bench/trace.sh: --time must be at least 1" >&2; exit 2; }
[ "$EVENTS" -ge 1 ] || { echo "bench/trace.sh: --trace-events must be at least 1" >&2; exit 2; }
case "$ONLY" in ""|off|on|rate) ;; *) echo "bench/trace.sh: --only takes off, on or rate, not '$ONLY'" >&2; exit 2 ;; esac
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "$KEEP" ]; then mkdir -p "$KEEP"; DIR=$(cd "$KEEP" && pwd); else
    DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT; fi
cd "$ROOT"
HERE=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then HERE="$HERE+changes"; fi

# median [smallest-largest] of the numbers on stdin, each printed with the
# printf format $1 (default %.3f)
spread() {
    sort -g | awk -v f="${1:-%.3f}" '{ v[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf f " [" f "-" f "]", m, v[1], v[NR] }'
}
# The value in the row of a bench script's table whose name matches $2.
row() { awk -F'|' -v re="$2" '$2 ~ re { v = $3; gsub(/[ *]/, "", v); print v; exit }' "$1"; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a" || a == 0) print "n/a"; else printf "%+.1f%%", (b - a) / a * 100 }'; }

echo "building release apps and the record-rate example of this tree ($HERE)..." >&2
cargo build --release -p apps --bin fwd --bin nvme-perf >&2
cargo build --release -p drivers --example trace_rate >&2

REPORT=$DIR/report.md
: >"$REPORT"

# ---- 1. tracing off: this tree against the base ------------------------
if want off; then
    if [ "$BASE" = hooks-out ]; then
        BREV=$(git rev-parse --short HEAD)
        BTREE=$ROOT/target/bench-base/hooks-out-$BREV
    else
        BREV=$(git rev-parse --short "$BASE^{commit}" 2>/dev/null) ||
            { echo "bench/trace.sh: --base $BASE is not a revision of this repository" >&2; exit 2; }
        BTREE=$ROOT/target/bench-base/$BREV
    fi
    if [ ! -f "$BTREE/Cargo.toml" ]; then
        echo "extracting $BREV into $BTREE..." >&2
        rm -rf "$BTREE.tmp" && mkdir -p "$BTREE.tmp"
        git archive "$BREV" | tar -x -C "$BTREE.tmp"
        if [ "$BASE" = hooks-out ]; then
            # Tap::is_on -> false, Tap::record -> nothing; check both took.
            f=$BTREE.tmp/drivers/src/trace/mod.rs
            perl -0pi -e 's/(pub fn is_on\(&self\) -> bool \{)\s*self\.0\.is_some\(\)/$1 false/;
                s/(pub fn record\(&self, f: impl FnOnce\(\) -> Event\) \{)\s*if let Some\(t\) = &self\.0 \{\s*t\.push\(f\(\)\);\s*\}/$1 let _ = f;/' "$f"
            grep -q 'bool { false' "$f" && grep -q 'Event) { let _ = f;' "$f" ||
                { echo "bench/trace.sh: could not compile the hooks out of $f (Tap::is_on or Tap::record changed? see the perl line)" >&2; exit 1; }
            BREV="$BREV with the hooks compiled out"
        fi
        mv "$BTREE.tmp" "$BTREE"
    elif [ "$BASE" = hooks-out ]; then
        BREV="$BREV with the hooks compiled out"
    fi
    if [ -n "$QUICK" ]; then
        NV=(--n1 5000 --n2 25000) FW=(--time 2 --n1 10000 --n2 50000 --n3 30000)
    else
        NV=(--n1 10000 --n2 50000) FW=(--time 3 --n1 20000 --n2 100000 --n3 60000)
    fi
    for side in base this; do
        tree=()
        [ "$side" = this ] || tree=(--tree "$BTREE")
        echo "part 1, $side: bench/nvme.sh ${NV[*]}..." >&2
        bash "$ROOT/bench/nvme.sh" "${NV[@]}" ${tree[@]+"${tree[@]}"} >"$DIR/nvme.$side.md" ||
            { echo "bench/trace.sh: bench/nvme.sh failed ($side)" >&2; exit 1; }
        echo "part 1, $side: bench/fwd.sh ${FW[*]}..." >&2
        bash "$ROOT/bench/fwd.sh" "${FW[@]}" ${tree[@]+"${tree[@]}"} >"$DIR/fwd.$side.md" ||
            { echo "bench/trace.sh: bench/fwd.sh failed ($side)" >&2; exit 1; }
    done
    {
        echo "## 1. Tracing off: $BREV (base) against $HERE (this tree), callgrind"
        echo
        echo "| measure | $BREV | $HERE | change |"
        echo "|---|---|---|---|"
        for m in "instructions per I/O, driver (entry points out of line)|nvme|honest" \
            "instructions per I/O, driver's lines in the shipping build|nvme|lower bound" \
            "instructions per I/O, nvme-perf as a whole (driver + app)|nvme|nvme-perf as a whole" \
            "instructions per forwarded packet, driver + app, empty rounds apart (fit)|fwd|empty rounds apart" \
            "instructions per forwarded packet, driver + app, empty rounds included (slope)|fwd|empty rounds included" \
            "instructions per empty fwd round (fit)|fwd|per empty round" \
            "fwd Mpps, timing run (load-dependent)|fwd|Mpps"; do
            IFS='|' read -r name file re <<<"$m"
            a=$(row "$DIR/$file.base.md" "$re") b=$(row "$DIR/$file.this.md" "$re")
            echo "| $name | ${a:-n/a} | ${b:-n/a} | $(pct "$a" "$b") |"
        done
        echo
        echo "(bench/nvme.sh ${NV[*]}; bench/fwd.sh ${FW[*]}; each also run with --tree $BTREE)"
        echo
    } >>"$REPORT"
fi

# ---- 2. tracing on against off -------------------------------------------
NVME=$ROOT/target/release/nvme-perf FWD=$ROOT/target/release/fwd
P1=emu:ixgbe,wire=loop,mac=02:00:00:00:00:01
P2=emu:ixgbe,wire=loop,mac=02:00:00:00:00:02
# One run: prints "RATE SECONDS EVENTS DROPPED" (events and dropped 0 when off).
one() {
    local w=$1 mode=$2 log=$3 tr=()
    [ "$mode" = off ] || tr=(--trace "$DIR/x.jsonl" --trace-events "$EVENTS")
    case "$w" in
        nvme-inline) "$NVME" emu:nvme,size=64M,mode=inline --qd 64 --time "$T" ${tr[@]+"${tr[@]}"} ;;
        nvme-threaded) "$NVME" emu:nvme,size=64M --qd 64 --time "$T" ${tr[@]+"${tr[@]}"} ;;
        fwd) "$FWD" "$P1" "$P2" --batch 32 --inject 256 --time "$T" --quiet ${tr[@]+"${tr[@]}"} ;;
    esac >"$log" 2>&1 || { cat "$log" >&2; echo "bench/trace.sh: $w ($mode) failed" >&2; exit 1; }
    rm -f "$DIR/x.jsonl"
    # nvme-perf: "IOPS: N", "I/Os: N in S s"; fwd: "busy: R Mpps ... (S s)".
    # The trace: "trace: N events written to FILE (K dropped ...)".
    awk '/^IOPS:/ { r = $2 } /^I\/Os:/ { s = $(NF - 1) }
        /^busy:/ { r = $2; if (match($0, /\(([0-9.]+) s\)/)) s = substr($0, RSTART + 1, RLENGTH - 4) }
        /^trace: [0-9]+ events written/ { e = $2; if (match($0, /\(([0-9]+) dropped/)) d = substr($0, RSTART + 1, RLENGTH - 9) }
        END { if (r == "" || s == "") exit 1; printf "%s %s %d %d\n", r, s, e, d }' "$log" ||
        { cat "$log" >&2; echo "bench/trace.sh: no rate or run time in $w's output ($log)" >&2; exit 1; }
}
if want on; then
    {
        echo "## 2. Tracing on (--trace x.jsonl --trace-events $EVENTS) against off, $PAIRS pairs of $T s, run in turn"
        echo
        echo "| workload | off (median [range]) | on | on/off per pair | on/off median [range] | events written per s of run (median) | dropped |"
        echo "|---|---|---|---|---|---|---|"
    } >>"$REPORT"
    for w in nvme-inline nvme-threaded fwd; do
        : >"$DIR/$w.off" >"$DIR/$w.on" >"$DIR/$w.ratio" >"$DIR/$w.eps"
        drops=0
        for i in $(seq 1 "$PAIRS"); do
            r=$(one "$w" off "$DIR/$w.off.$i.log") || exit 1
            read -r off _ _ _ <<<"$r"
            r=$(one "$w" on "$DIR/$w.on.$i.log") || exit 1
            read -r on secs ev dr <<<"$r"
            echo "$off" >>"$DIR/$w.off"
            echo "$on" >>"$DIR/$w.on"
            awk -v a="$off" -v b="$on" 'BEGIN { printf "%.3f\n", b / a }' >>"$DIR/$w.ratio"
            awk -v e="$ev" -v s="$secs" 'BEGIN { printf "%.0f\n", e / s }' >>"$DIR/$w.eps"
            drops=$((drops + dr))
            echo "part 2, $w pair $i: off $off, on $on ($ev events in $secs s, $dr dropped)" >&2
        done
        unit=IOPS f=%.0f
        [ "$w" != fwd ] || unit=Mpps f=%.3f
        echo "| $w ($unit) | $(spread "$f" <"$DIR/$w.off") | $(spread "$f" <"$DIR/$w.on") | $(paste -sd' ' "$DIR/$w.ratio") | $(spread <"$DIR/$w.ratio") | $(sort -g "$DIR/$w.eps" | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f M", m / 1e6 }') | $drops |" >>"$REPORT"
    done
    echo >>"$REPORT"
fi

# ---- 3. the recording path alone -------------------------------------------
if want rate; then
    {
        echo "## 3. Tap::record alone (drivers/examples/trace_rate.rs, 16-byte payload, 2000000 events per thread)"
        echo
        echo '```'
        for th in 1 2; do
            "$ROOT/target/release/examples/trace_rate" --threads "$th" --events 2000000 --raw 16 ||
                { echo "bench/trace.sh: trace_rate failed" >&2; exit 1; }
        done
        echo '```'
        echo
    } >>"$REPORT"
fi

echo
echo "# bench/trace.sh on $HERE, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
cat "$REPORT"
