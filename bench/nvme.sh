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
 --keep DIR  keep the binaries, callgrind files and logs in DIR (default:
             a temp dir, removed)
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

Two builds of nvme-perf are measured, each with two callgrind runs:

 shipping build (cargo build --release -p apps --bin nvme-perf), the
 binary that is used. Most of the driver is inlined into the app's
 worker loop there.
   whole    the worker thread's instructions without the controller
            model's register handlers (MmioDevice::mmio_read/mmio_write,
            inclusive: on a real drive the doorbell is one store).
   inlined  the self cost (callgrind_annotate --inclusive=no, per source
            file and function) of the lines that are the driver's: a
            function of the drivers or dma crates, or a source line of
            drivers/src, dma/src or spec/src inlined anywhere (the model
            and the emulated IOMMU left out). A LOWER BOUND: std code
            inlined into the worker from an inlined driver function (Vec
            and slice code, Option/Result plumbing, atomics) is
            attributed to std, and counted for the app.

 measurement build (the same with --features drivers/noinline-entry):
 the driver's entry points IoQueuePair::submit_read, submit_write,
 ring_doorbell and poll, and poll's call of the app's callback, are out
 of line (#[inline(never)] by cfg_attr), so everything the driver runs
 happens inside one of them.
   driver   the HONEST figure, the one judged against the target: the
            cost inside the four entry points, inclusive of everything
            they call (std code, clock reads), minus the code that is
            not the driver's: the controller model (functions of the emu
            crate, MmioDevice, the emulated IOMMU) with everything they
            call, lines of emu/src inlined into the driver (the emulated
            BAR's checks around a register write, which on hardware is
            one store), and the app's poll callback (the out-of-line
            io_queue::deliver, with everything it calls). A function
            called from both sides (e.g. memcpy, the clock) is split in
            proportion to the calls' inclusive costs. It includes the
            calls into the out-of-line entry points (argument passing,
            prologues, the result by memory), which the shipping build
            does not pay: an upper bound by those few instructions.
   Not quite deterministic: a doorbell more than 10 ms (STAMP_SLACK in
   drivers/src/nvme/slots.rs) after the previous one restamps the
   commands it announces (CommandSlots::restamp, listed below), which
   valgrind's slowdown makes happen now and then (a few instructions per
   I/O; on hardware doorbells under load are microseconds apart); the
   app's own figure moves by a few instructions between runs too (its
   once-a-second work).
The measurement build's driver functions, per I/O, are listed.
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

ME=bench/nvme.sh
. "$(dirname "$0")/lib.sh"
bench_root "$TREE"
bench_trace "$TRACE_FILE" "$TRACE_EVENTS"
bench_dir "$KEEP"
cd "$ROOT"

# The measurement build first, the shipping build last, so that
# target/release/nvme-perf is the shipping one when the script ends.
# A tree from before the feature existed (--tree of an older revision)
# gets the shipping figures only.
if grep -q '^noinline-entry' "$ROOT/drivers/Cargo.toml"; then HONEST_OK=1; else HONEST_OK=; fi
if [ -n "$HONEST_OK" ]; then
    echo "building release nvme-perf with the driver's entry points out of line..." >&2
    cargo build --release -p apps --bin nvme-perf --features drivers/noinline-entry >&2
    cp "$ROOT/target/release/nvme-perf" "$DIR/nvme-perf-noinline-entry"
else
    echo "bench/nvme.sh: $ROOT has no drivers feature noinline-entry: no honest driver figure" >&2
fi
echo "building release nvme-perf..." >&2
cargo build --release -p apps --bin nvme-perf >&2
cp "$ROOT/target/release/nvme-perf" "$DIR/nvme-perf"
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

# The honest driver cost of one callgrind file of the measurement build,
# read from the call graph itself (the callgrind format: fn= a function,
# fl=/fi=/fe= the source file of the cost lines that follow, cfn= and
# calls= a call whose inclusive cost is the next line; names compressed as
# "(id) name" once, "(id)" after). Each function gets the share d of its
# runs that are the driver's: 1 for the four entry points, 0 for the
# model's and the app's functions (and the roots), for every other
# function the mean of its callers' shares weighted by the calls'
# inclusive costs. The driver's cost is the sum over functions of d times
# their self cost in files other than emu/src and apps/src. Prints
# "COST<TAB>FUNCTION" per function, then "TOTAL<TAB>COST".
honest_driver() {
    awk '
    function id_of(s, table,   id, rest) {
        if (match(s, /^\([0-9]+\)/)) {
            id = substr(s, 2, RLENGTH - 2); rest = substr(s, RLENGTH + 1); sub(/^ /, "", rest)
            if (rest != "") table[id] = rest
            return id
        }
        return s
    }
    function file_of(s,   id) { id = id_of(s, files); return (id in files) ? files[id] : s }
    /^fl=/ { fl = file_of(substr($0, 4)); file = fl; next }
    /^f[ie]=/ { file = file_of(substr($0, 4)); next }
    /^fn=/ { fn = id_of(substr($0, 4), names); file = fl; next }
    /^cf[il]=/ { file_of(substr($0, 5)); next }
    /^cfn=/ { cfn = id_of(substr($0, 5), names); next }
    /^calls=/ { incall = 1; next }
    /^[0-9+*-]/ {
        c = $2 + 0
        if (incall) { arc[fn SUBSEP cfn] += c; incall = 0; next }
        if (file !~ /(^|\/)(emu|apps)\/src\//) own[fn] += c
        next
    }
    END {
        for (id in names) {
            n = names[id]
            if (n ~ /IoQueuePair<[^>]*>::(submit_read|submit_write|ring_doorbell|poll)$/) { fixed[id] = 1; entries++ }
            else if (n ~ /(^|[<( &*])(emu|nvme_perf)::/ || n ~ /MmioDevice|EmuIommu|io_queue::deliver/) fixed[id] = 0
        }
        if (entries == 0) { print "no driver entry point (IoQueuePair::submit_read/...) in the callgrind file" > "/dev/stderr"; exit 1 }
        for (k in arc) { split(k, p, SUBSEP); callers[p[2]] = callers[p[2]] " " p[1]; into[p[2]] += arc[k] }
        for (id in names) d[id] = (id in fixed) ? fixed[id] : 0
        # Jacobi iterations: the call graph below the entry points is a
        # few levels deep, so 64 passes settle it.
        for (it = 0; it < 64; it++)
            for (id in callers) {
                if ((id in fixed) || into[id] == 0) continue
                n = split(callers[id], cs, " "); s = 0
                for (i = 1; i <= n; i++) s += arc[cs[i] SUBSEP id] * d[cs[i]]
                d[id] = s / into[id]
            }
        for (id in own) {
            v = d[id] * own[id]
            if (v <= 0) continue
            total += v
            printf "%.0f\t%s\n", v, names[id]
        }
        printf "TOTAL\t%.0f\n", total
    }'
}

# The worker thread's callgrind file of a run in directory $1.
worker_file() {
    local f
    f=$(grep -l 'nvme_perf::worker' "$1"/callgrind.out.*-* | head -1)
    [ -n "$f" ] || { echo "bench/nvme.sh: no file of the worker thread (nvme_perf::worker) in $1" >&2; exit 1; }
    echo "$f"
}

# One callgrind run of binary $2 doing $1 I/Os, in directory $3.
run_cg() {
    local n=$1 bin=$2 d=$3
    rm -rf "$d" && mkdir -p "$d"
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$d/callgrind.out.%p" \
        "$bin" "$DEV" --qd "$QD" --count "$n" ${TRACE[@]+"${TRACE[@]}"} >"$d/log" 2>&1 ||
        { cat "$d/log" >&2; echo "bench/nvme.sh: callgrind run of $n I/Os ($bin) failed" >&2; exit 1; }
}

# One callgrind run of the shipping build: prints "IOS TOTAL MODEL INLINED"
# and leaves the driver's lines in $DIR/cg-N/driver.
cg() {
    local n=$1 d=$DIR/cg-$1
    run_cg "$n" "$DIR/nvme-perf" "$d"
    local worker ios ir model driver
    worker=$(worker_file "$d")
    ios=$(sed -n 's/^I\/Os: *\([0-9]*\) .*/\1/p' "$d/log")
    ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$worker")
    model=$(callgrind_annotate --inclusive=yes "$worker" 2>/dev/null |
        awk '/MmioDevice( for [^ ]+)?>::mmio_(read|write) \[/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')
    callgrind_annotate --inclusive=no --threshold=100 "$worker" 2>/dev/null | driver_lines >"$d/driver"
    driver=$(awk -F'\t' '{ s += $1 } END { print s + 0 }' "$d/driver")
    echo "$ios $ir $model $driver"
}

# One callgrind run of the measurement build: prints "IOS HONEST" and
# leaves the driver's functions in $DIR/ni-N/driver.
cg_noinline() {
    local n=$1 d=$DIR/ni-$1
    run_cg "$n" "$DIR/nvme-perf-noinline-entry" "$d"
    local worker ios
    worker=$(worker_file "$d")
    ios=$(sed -n 's/^I\/Os: *\([0-9]*\) .*/\1/p' "$d/log")
    honest_driver <"$worker" >"$d/all" || { echo "bench/nvme.sh: could not attribute $worker" >&2; exit 1; }
    grep -v '^TOTAL' "$d/all" >"$d/driver" || true
    echo "$ios $(sed -n 's/^TOTAL\t//p' "$d/all")"
}

echo "callgrind runs: $N1 and $N2 I/Os, shipping build..." >&2
read -r F1 I1 M1 D1 < <(cg "$N1")
read -r F2 I2 M2 D2 < <(cg "$N2")
[ -n "$F1" ] && [ -n "$F2" ] && [ -n "$I1" ] && [ -n "$I2" ] && [ "$F2" -gt "$F1" ] ||
    { echo "bench/nvme.sh: could not read the I/O counts or the callgrind totals in $DIR" >&2; exit 1; }
[ "$M2" -gt 0 ] ||
    { echo "bench/nvme.sh: no controller-model register handler in the callgrind output (renamed? see the pattern in cg())" >&2; exit 1; }
[ "$D2" -gt 0 ] ||
    { echo "bench/nvme.sh: no driver line in the callgrind output (renamed crates? see driver_lines)" >&2; exit 1; }
if [ -n "$HONEST_OK" ]; then
    echo "callgrind runs: $N1 and $N2 I/Os, measurement build (entry points out of line)..." >&2
    read -r G1 H1 < <(cg_noinline "$N1")
    read -r G2 H2 < <(cg_noinline "$N2")
    [ "$G1" = "$F1" ] && [ "$G2" = "$F2" ] && [ -n "$H1" ] && [ -n "$H2" ] && [ "$H2" -gt 0 ] ||
        { echo "bench/nvme.sh: the measurement build's runs did not give I/O counts and a driver cost (see $DIR/ni-*)" >&2; exit 1; }
fi
slope() { awk -v a="$1" -v b="$2" -v x="$F1" -v y="$F2" 'BEGIN { printf "%.1f", (b - a) / (y - x) }'; }
ALL=$(slope "$I1" "$I2")
WHOLE=$(slope "$((I1 - M1))" "$((I2 - M2))")
MODEL=$(slope "$M1" "$M2")
INLINED=$(slope "$D1" "$D2")
HONEST=n/a APP=n/a TOP="  (no measurement build)"
H1=${H1:-n/a} H2=${H2:-n/a}
if [ -n "$HONEST_OK" ]; then
HONEST=$(slope "$H1" "$H2")
APP=$(awk -v w="$WHOLE" -v d="$HONEST" 'BEGIN { printf "%.1f", w - d }')
# Per function of the measurement build, the slope between the two runs.
TOP=$(awk -F'\t' -v x="$F1" -v y="$F2" 'NR == FNR { a[$2] = $1; next }
    { printf "%.1f\t%s\n", ($1 - a[$2]) / (y - x), $2 }' "$DIR/ni-$N1/driver" "$DIR/ni-$N2/driver" |
    sort -t"$(printf '\t')" -k1,1gr | awk -F'\t' '$1 >= 0.5 { printf "  %6.1f  %s\n", $1, $2 }' | head -20)
fi

cat <<R

nvme-perf $DEV --qd $QD, 4 KiB random reads, one queue pair, $(nproc) CPUs;
tree $ROOT; tracing ${TRACE[*]:-off}

| measure | value |
|---|---|
| callgrind: I/Os, runs 1 / 2 | $F1 / $F2 |
| shipping build: worker-thread Ir, runs 1 / 2 | $I1 / $I2 |
| shipping build: of which the controller model's register handlers | $M1 / $M2 |
| shipping build: of which the driver's lines | $D1 / $D2 |
| measurement build: the driver's cost | $H1 / $H2 |
| **instructions per I/O, driver (entry points out of line, honest)** | **$HONEST** |
| instructions per I/O, driver's lines in the shipping build (lower bound) | $INLINED |
| instructions per I/O, nvme-perf's own (whole minus honest driver) | $APP |
| **instructions per I/O, nvme-perf as a whole (driver + app, shipping build)** | **$WHOLE** |
| the controller model, per I/O (left out above) | $MODEL |
| everything on the worker thread, per I/O | $ALL |
| target (issue 15) | driver at most 250, whole at most 450 |

Driver functions per I/O in the measurement build (inlined code counted
in the function it is inlined into; slope of the two runs; under 0.5
instructions per I/O not shown):
$TOP
R
