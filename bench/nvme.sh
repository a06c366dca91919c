#!/usr/bin/env bash
# bench/nvme.sh: instructions per I/O of the NVMe driver alone and of
# nvme-perf as a whole (driver + app), the emulated controller's code left
# out: callgrind on nvme-perf with an inline controller, slope between two
# I/O counts. Deterministic, unlike a timing run on a shared machine.
set -euo pipefail

usage() {
    cat <<'U'
usage: bench/nvme.sh [--n1 N] [--n2 N] [--qd N] [--keep DIR] [--tree DIR]
                     [--trace FILE [--trace-events N]]

 --n1, --n2  I/Os of the two callgrind runs (default 20000 and 100000)
 --qd N      queue depth (default 64)
 --keep DIR  keep the callgrind files and logs in DIR (default: a temp
             dir, removed)
 --tree DIR  build and measure the checkout in DIR (another revision of
             this repository, with its own target directory) instead of
             this one
 --trace FILE
             run nvme-perf with --trace FILE (tracing on; the file is
             rewritten by each run); default: tracing off
 --trace-events N
             with --trace: nvme-perf's --trace-events (events kept per
             device)

Load: nvme-perf emu:nvme,size=64M,mode=inline --qd N --count N, 4 KiB
random reads, one queue pair. Inline: the controller model runs on the
driver's thread, inside the doorbell write (the model's mmio_write), so
nothing depends on how threads are scheduled and two runs of the same
build give the same counts.

Per I/O = (Ir(n2) - Ir(n1)) / (n2 - n1) on nvme-perf's worker thread
(the one running nvme_perf::worker); start-up and teardown cancel.

 whole   the worker thread's instructions without the controller model's
         register handlers (MmioDevice::mmio_read/mmio_write, inclusive:
         on a real drive the doorbell is one store).
 driver  the self cost (callgrind_annotate --inclusive=no, one line per
         source file and function, so code inlined into the app is
         attributed to its source file) of every line that is the
         driver's: a function of the drivers or dma crates
         (drivers::..., dma::..., also generic code instantiated for
         them, e.g. drop_in_place<drivers::...>), or a source line in
         drivers/src, dma/src or spec/src inlined anywhere. Left out: the
         model (emu/src, emu::... functions, and the emulated IOMMU,
         dma::iommu::EmuIommu, which is the device's side of DMA) and
         the app (nvme-perf's own lines and the std code they call:
         clocks, latency histogram, random offsets). Std code inlined
         into a driver function counts for the driver; std code inlined
         into nvme-perf's worker from an inlined driver function counts
         for the app (callgrind cannot tell the two apart), so the
         driver figure is a slight underestimate.
The top driver lines, per I/O, are listed.
U
}

N1=20000 N2=100000 QD=64 KEEP= TREE= TRACE_FILE= TRACE_EVENTS=
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --n1) N1=${2:?--n1 needs a count}; shift 2 ;;
        --n2) N2=${2:?--n2 needs a count}; shift 2 ;;
        --qd) QD=${2:?--qd needs a depth}; shift 2 ;;
        --keep) KEEP=${2:?--keep needs a directory}; shift 2 ;;
        --tree) TREE=${2:?--tree needs a directory}; shift 2 ;;
        --trace) TRACE_FILE=${2:?--trace needs a file name}; shift 2 ;;
        --trace-events) TRACE_EVENTS=${2:?--trace-events needs a count}; shift 2 ;;
        *) echo "bench/nvme.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for v in "$N1" "$N2" "$QD"; do
    [[ "$v" =~ ^[0-9]+$ ]] || { echo "bench/nvme.sh: '$v' is not a whole number" >&2; exit 2; }
done
[ "$N2" -gt "$N1" ] || { echo "bench/nvme.sh: --n2 must be larger than --n1" >&2; exit 2; }
[ "$QD" -ge 1 ] || { echo "bench/nvme.sh: --qd must be at least 1" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "bench/nvme.sh: valgrind not found (apt-get install valgrind)" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "$TREE" ]; then
    [ -f "$TREE/Cargo.toml" ] || { echo "bench/nvme.sh: --tree $TREE is not a checkout of this repository (no Cargo.toml)" >&2; exit 2; }
    ROOT=$(cd "$TREE" && pwd)
fi
# nvme-perf's trace options: none (tracing off) or --trace FILE (absolute,
# as the runs happen in $ROOT) [--trace-events N].
TRACE=()
if [ -n "$TRACE_FILE" ]; then
    case "$TRACE_FILE" in /*) ;; *) TRACE_FILE=$PWD/$TRACE_FILE ;; esac
    TRACE=(--trace "$TRACE_FILE")
    [ -z "$TRACE_EVENTS" ] || TRACE+=(--trace-events "$TRACE_EVENTS")
elif [ -n "$TRACE_EVENTS" ]; then
    echo "bench/nvme.sh: --trace-events needs --trace FILE" >&2; exit 2
fi
if [ -n "$KEEP" ]; then mkdir -p "$KEEP"; DIR=$(cd "$KEEP" && pwd); else
    DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT; fi
cd "$ROOT"

echo "building release nvme-perf..." >&2
cargo build --release -p apps --bin nvme-perf >&2
BIN=$ROOT/target/release/nvme-perf
DEV=emu:nvme,size=64M,mode=inline

# The driver's lines of a callgrind_annotate --inclusive=no listing, as
# "COST<TAB>FILE:FUNCTION" (the object in brackets dropped).
driver_lines() {
    # Read to the end (no early exit: that would kill callgrind_annotate
    # with SIGPIPE and fail the pipeline).
    awk '/^-- Auto-annotated/ { done = 1 }
        !done && /^ *[0-9,]+ \(/ {
            cost = $1; gsub(",", "", cost)
            line = $0; sub(/^ *[0-9,]+ \( *[0-9.]+%\) +/, "", line); sub(/ \[[^]]*\]$/, "", line)
            i = index(line, ":"); file = substr(line, 1, i - 1); fn = substr(line, i + 1)
            if (file ~ /(^|\/)emu\/src\// || fn ~ /(^|[<( &*])emu::/ || fn ~ /EmuIommu/) next
            if (fn ~ /^<?(drivers|dma)::/ || fn ~ /[<( &*](drivers|dma)::/ || file ~ /(^|\/)(drivers|dma|spec)\/src\//)
                print cost "\t" line
        }'
}

# One callgrind run of N I/Os: prints "IOS TOTAL MODEL DRIVER" and leaves
# the driver's lines in $DIR/cg-N/driver.
cg() {
    local n=$1 d=$DIR/cg-$1
    rm -rf "$d" && mkdir -p "$d"
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$d/callgrind.out.%p" \
        "$BIN" "$DEV" --qd "$QD" --count "$n" ${TRACE[@]+"${TRACE[@]}"} >"$d/log" 2>&1 ||
        { cat "$d/log" >&2; echo "bench/nvme.sh: callgrind run of $n I/Os failed" >&2; exit 1; }
    local worker
    worker=$(grep -l 'nvme_perf::worker' "$d"/callgrind.out.*-* | head -1)
    [ -n "$worker" ] || { echo "bench/nvme.sh: no file of the worker thread (nvme_perf::worker) in $d" >&2; exit 1; }
    local ios ir model driver
    ios=$(sed -n 's/^I\/Os: *\([0-9]*\) .*/\1/p' "$d/log")
    ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$worker")
    model=$(callgrind_annotate --inclusive=yes "$worker" 2>/dev/null |
        awk '/MmioDevice( for [^ ]+)?>::mmio_(read|write) \[/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')
    callgrind_annotate --inclusive=no --threshold=100 "$worker" 2>/dev/null | driver_lines >"$d/driver"
    driver=$(awk -F'\t' '{ s += $1 } END { print s + 0 }' "$d/driver")
    echo "$ios $ir $model $driver"
}

echo "callgrind runs: $N1 and $N2 I/Os..." >&2
read -r F1 I1 M1 D1 < <(cg "$N1")
read -r F2 I2 M2 D2 < <(cg "$N2")
[ -n "$F1" ] && [ -n "$F2" ] && [ -n "$I1" ] && [ -n "$I2" ] && [ "$F2" -gt "$F1" ] ||
    { echo "bench/nvme.sh: could not read the I/O counts or the callgrind totals in $DIR" >&2; exit 1; }
[ "$M2" -gt 0 ] ||
    { echo "bench/nvme.sh: no controller-model register handler in the callgrind output (renamed? see the pattern in cg())" >&2; exit 1; }
[ "$D2" -gt 0 ] ||
    { echo "bench/nvme.sh: no driver line in the callgrind output (renamed crates? see driver_lines)" >&2; exit 1; }
slope() { awk -v a="$1" -v b="$2" -v x="$F1" -v y="$F2" 'BEGIN { printf "%.1f", (b - a) / (y - x) }'; }
ALL=$(slope "$I1" "$I2")
WHOLE=$(slope "$((I1 - M1))" "$((I2 - M2))")
MODEL=$(slope "$M1" "$M2")
DRIVER=$(slope "$D1" "$D2")
APP=$(awk -v w="$WHOLE" -v d="$DRIVER" 'BEGIN { printf "%.1f", w - d }')
# Per line, the slope between the two runs: the lines the driver figure adds up.
TOP=$(awk -F'\t' -v x="$F1" -v y="$F2" 'NR == FNR { a[$2] = $1; next }
    { printf "%.1f\t%s\n", ($1 - a[$2]) / (y - x), $2 }' "$DIR/cg-$N1/driver" "$DIR/cg-$N2/driver" |
    sort -t"$(printf '\t')" -k1,1gr | awk -F'\t' '$1 >= 1 { if (match($2, /(drivers|dma|spec)\/src\//)) $2 = substr($2, RSTART); sub(/^\/rustc\/[^\/]*\/library\//, "std:", $2); printf "  %6.1f  %s\n", $1, $2 }' | head -20)

cat <<R

nvme-perf $DEV --qd $QD, 4 KiB random reads, one queue pair, $(nproc) CPUs;
tree $ROOT; tracing ${TRACE[*]:-off}

| measure | value |
|---|---|
| callgrind: I/Os, runs 1 / 2 | $F1 / $F2 |
| callgrind: worker-thread Ir, runs 1 / 2 | $I1 / $I2 |
| callgrind: of which the controller model's register handlers | $M1 / $M2 |
| callgrind: of which the driver's lines | $D1 / $D2 |
| **instructions per I/O, driver alone** | **$DRIVER** |
| instructions per I/O, nvme-perf's own (whole minus driver) | $APP |
| **instructions per I/O, nvme-perf as a whole (driver + app)** | **$WHOLE** |
| the controller model, per I/O (left out above) | $MODEL |
| everything on the worker thread, per I/O | $ALL |
| target (issue 15) | driver at most 250, whole at most 450 |

Driver lines per I/O (source file:function, slope of the two runs;
lines under 1 instruction per I/O not shown):
$TOP
R
