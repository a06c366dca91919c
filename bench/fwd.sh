#!/usr/bin/env bash
# bench/fwd.sh: fwd between two emulated 82599 ports (threaded models),
# batch 32: Mpps (timing run) and the forwarding thread's instructions per
# forwarded packet (callgrind, slope between two packet counts).
set -euo pipefail

usage() {
    cat <<'U'
usage: bench/fwd.sh [--time S] [--n1 N] [--n2 N] [--n3 N] [--inject K] [--keep DIR]
                    [--tree DIR] [--trace FILE [--trace-events N]]

Traffic: both ports on wire=loop; fwd --inject K sends K 60-byte frames
out of port 2 at start, which then circle (port 2 loop -> fwd -> port 1
loop -> fwd -> ...) for ever. No ring is ever overrun (K < 512 RX
descriptors), so every frame counted was forwarded, and no second process
or socket is involved. (pcap-in replays as fast as the model polls and,
without pause=on, drops what a full or not yet enabled ring cannot take;
unix: wires cost a syscall per frame, and drop when the socket is full
unless every port has pause=on.)

 --time S    timing run length in seconds (default 10)
 --n1, --n2, --n3
             frames forwarded in the three callgrind runs (default 50000,
             250000, 150000)
 --inject K  frames circling (default 256, at most 511)
 --keep DIR  keep callgrind files and logs in DIR (default: a temp dir, removed)
 --tree DIR  build and measure the checkout in DIR (another revision of this
             repository, with its own target directory) instead of this one
 --trace FILE
             run fwd with --trace FILE in every run (tracing on; the file is
             rewritten by each run); default: tracing off
 --trace-events N
             with --trace: fwd's --trace-events (events kept per device)

Instructions per packet = (Ir(n2) - Ir(n1)) / (frames(n2) - frames(n1)),
Ir = total instructions of fwd's main thread (the forwarding thread;
the device models run on threads named emu-..., not counted). The
difference cancels start-up and teardown, which are the same in both runs.
That slope also holds the empty rounds (polls that found nothing), whose
number depends on how valgrind schedules the threads and varies from run
to run (a few thousand to 150,000 here). So the three runs are also fitted
as Ir = fixed + a * frames + b * empty rounds: a is the cost of a packet
with the empty rounds apart, b that of an empty round; a is the figure to
compare between builds.
U
}

T=10 N1=50000 N2=250000 N3=150000 INJECT=256 KEEP= TREE= TRACE_FILE= TRACE_EVENTS=
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --time) T=${2:?--time needs seconds}; shift 2 ;;
        --n1) N1=${2:?--n1 needs a count}; shift 2 ;;
        --n2) N2=${2:?--n2 needs a count}; shift 2 ;;
        --n3) N3=${2:?--n3 needs a count}; shift 2 ;;
        --inject) INJECT=${2:?--inject needs a count}; shift 2 ;;
        --keep) KEEP=${2:?--keep needs a directory}; shift 2 ;;
        --tree) TREE=${2:?--tree needs a directory}; shift 2 ;;
        --trace) TRACE_FILE=${2:?--trace needs a file name}; shift 2 ;;
        --trace-events) TRACE_EVENTS=${2:?--trace-events needs a count}; shift 2 ;;
        *) echo "bench/fwd.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for v in "$N1" "$N2" "$N3" "$INJECT"; do
    [[ "$v" =~ ^[0-9]+$ ]] || { echo "bench/fwd.sh: '$v' is not a whole number" >&2; exit 2; }
done
[ "$N2" -gt "$N1" ] || { echo "bench/fwd.sh: --n2 must be larger than --n1" >&2; exit 2; }
[ "$N3" != "$N1" ] && [ "$N3" != "$N2" ] || { echo "bench/fwd.sh: --n3 must differ from --n1 and --n2" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "bench/fwd.sh: valgrind not found (apt-get install valgrind)" >&2; exit 1; }

ME=bench/fwd.sh
. "$(dirname "$0")/lib.sh"
bench_root "$TREE"
bench_trace "$TRACE_FILE" "$TRACE_EVENTS"
bench_dir "$KEEP"
cd "$ROOT"

echo "building release apps..." >&2
cargo build --release -p apps --bin fwd >&2
FWD=$ROOT/target/release/fwd
P1=emu:ixgbe,wire=loop,mac=02:00:00:00:00:01
P2=emu:ixgbe,wire=loop,mac=02:00:00:00:00:02
COMMON=(--batch 32 --inject "$INJECT" ${TRACE[@]+"${TRACE[@]}"})

echo "timing run: $T s..." >&2
"$FWD" "$P1" "$P2" "${COMMON[@]}" --time "$T" --quiet >"$DIR/timing.log" 2>&1 ||
    { cat "$DIR/timing.log" >&2; echo "bench/fwd.sh: timing run failed" >&2; exit 1; }
MPPS=$(sed -n 's/^busy: *\([0-9.]*\) Mpps.*/\1/p' "$DIR/timing.log")
TFRAMES=$(sed -n 's/^forwarded: *\([0-9]*\) frames.*/\1/p' "$DIR/timing.log")
[ -n "$MPPS" ] || { cat "$DIR/timing.log" >&2; echo "bench/fwd.sh: no rate in fwd's output" >&2; exit 1; }

# One callgrind run of N frames: prints "FRAMES IR EMPTY".
cg() {
    local n=$1 d=$DIR/cg-$1
    mkdir -p "$d"
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$d/callgrind.out.%p" \
        "$FWD" "$P1" "$P2" "${COMMON[@]}" --count "$n" --quiet --idle-yield >"$d/log" 2>&1 ||
        { cat "$d/log" >&2; echo "bench/fwd.sh: callgrind run of $n frames failed" >&2; exit 1; }
    # Per-thread files are callgrind.out.PID-TT, TT = valgrind's thread
    # number; 01 is the process's main thread, where fwd forwards.
    local main
    main=$(grep -l '^thread: 1$' "$d"/callgrind.out.*-* | head -1)
    [ -n "$main" ] || { echo "bench/fwd.sh: no main-thread file in $d" >&2; exit 1; }
    local ir frames empty model
    ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$main")
    frames=$(sed -n 's/^forwarded: *\([0-9]*\) frames.*/\1/p' "$d/log")
    empty=$(sed -n 's/.*empty rounds: *\([0-9]*\).*/\1/p' "$d/log")
    # The device models' register handlers, run on this thread by the
    # emulated BAR when the driver writes a tail register (inclusive cost).
    # The symbol reads `<Model as emu::bar::MmioDevice>::mmio_write` when
    # the impl sits beside the model, `<impl emu::bar::MmioDevice for
    # Model>::mmio_write` when it has a file of its own (emu/src/nic/mmio.rs).
    model=$(callgrind_annotate --inclusive=yes "$main" 2>/dev/null |
        awk '/MmioDevice( for [^ ]+)?>::mmio_(read|write) \[/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')
    echo "$frames $ir $empty $model"
}
echo "callgrind runs: $N1, $N2 and $N3 frames..." >&2
read -r F1 I1 E1 M1 < <(cg "$N1")
read -r F2 I2 E2 M2 < <(cg "$N2")
read -r F3 I3 E3 M3 < <(cg "$N3")
[ -n "$I1" ] && [ -n "$I2" ] && [ -n "$I3" ] && [ -n "$F1" ] && [ -n "$F2" ] && [ -n "$F3" ] &&
    [ -n "$E1" ] && [ -n "$E2" ] && [ -n "$E3" ] && [ -n "$M2" ] && [ -n "$M3" ] ||
    { echo "bench/fwd.sh: could not read the callgrind results in $DIR" >&2; exit 1; }
# The emulated ports' tail writes always run model code on fwd's thread; none
# found means the symbol pattern above no longer matches the model's handler.
[ "$M2" -gt 0 ] ||
    { echo "bench/fwd.sh: no device-model register handler found in the callgrind output (renamed? see the pattern in cg())" >&2; exit 1; }
SLOPE_ALL=$(awk -v a="$I1" -v b="$I2" -v x="$F1" -v y="$F2" 'BEGIN{printf "%.1f", (b-a)/(y-x)}')
SLOPE=$(awk -v a="$((I1 - M1))" -v b="$((I2 - M2))" -v x="$F1" -v y="$F2" 'BEGIN{printf "%.1f", (b-a)/(y-x)}')
# Ir - model = fixed + a * frames + b * empty, solved from the three runs
# (differences against run 1, Cramer's rule). When the empty rounds grew in
# step with the frames the two costs cannot be told apart: say so.
read -r PER_PACKET PER_EMPTY < <(fit3 "$F1" "$F2" "$F3" "$E1" "$E2" "$E3" \
    "$((I1 - M1))" "$((I2 - M2))" "$((I3 - M3))")

cat <<R

fwd, two emulated 82599 ports (threaded models), wire=loop, $INJECT frames
circling, 60-byte frames, batch 32, $(nproc) CPUs; tree $ROOT;
tracing ${TRACE[*]:-off}

| measure | value |
|---|---|
| timing run: frames forwarded in ${T} s | $TFRAMES |
| timing run: Mpps (first to last frame) | $MPPS |
| callgrind: frames forwarded, runs 1 / 2 / 3 | $F1 / $F2 / $F3 |
| callgrind: main-thread Ir, runs 1 / 2 / 3 | $I1 / $I2 / $I3 |
| callgrind: empty rounds, runs 1 / 2 / 3 | $E1 / $E2 / $E3 |
| callgrind: of which device-model register handlers, runs 1 / 2 / 3 | $M1 / $M2 / $M3 |
| **instructions per forwarded packet, driver + app, empty rounds apart** (fit of the three runs) | **$PER_PACKET** |
| instructions per empty round (fit) | $PER_EMPTY |
| instructions per forwarded packet, driver + app, empty rounds included (slope of runs 1 and 2) | $SLOPE |
| the same with the model's register handlers | $SLOPE_ALL |
| published, ixy (C), 82599, batch 32 | 127 |
| published, ixy.rs, 82599, batch 32 | 209 |
| target | at most 100 |

Instructions per packet = (Ir2 - Ir1) / (frames2 - frames1): the fixed
start-up and teardown of fwd's main thread cancel; the device-model
threads (emu-...) are other callgrind files and are not counted. Empty
rounds (polls that found nothing, then a yield) are included in the slope,
and their number varies with valgrind's scheduling; the fit
Ir = fixed + a * frames + b * empty over the three runs separates them
(n/a when the empty rounds grew in step with the frames: run again).
The driver + app figure also leaves out the device model's own code that
the emulated BAR runs on fwd's thread when the driver writes a tail
register (NicModel's mmio_write, inclusive): on a real NIC that register
write is one store.
R
