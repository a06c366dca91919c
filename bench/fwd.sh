#!/usr/bin/env bash
# bench/fwd.sh: fwd between two emulated 82599 ports (threaded models),
# batch 32: Mpps (timing run) and the forwarding thread's instructions per
# forwarded packet (callgrind, slope between two packet counts).
set -euo pipefail

usage() {
    cat <<'U'
usage: bench/fwd.sh [--time S] [--n1 N] [--n2 N] [--inject K] [--keep DIR]

Traffic: both ports on wire=loop; fwd --inject K sends K 60-byte frames
out of port 2 at start, which then circle (port 2 loop -> fwd -> port 1
loop -> fwd -> ...) for ever. No ring is ever overrun (K < 512 RX
descriptors), so every frame counted was forwarded, and no second process
or socket is involved. (pcap-in replays as fast as the model polls and,
without pause=on, drops what a full or not yet enabled ring cannot take;
unix: wires cost a syscall per frame, and drop when the socket is full
unless every port has pause=on.)

 --time S    timing run length in seconds (default 10)
 --n1, --n2  frames forwarded in the two callgrind runs (default 50000, 250000)
 --inject K  frames circling (default 256, at most 511)
 --keep DIR  keep callgrind files and logs in DIR (default: a temp dir, removed)

Instructions per packet = (Ir(n2) - Ir(n1)) / (frames(n2) - frames(n1)),
Ir = total instructions of fwd's main thread (the forwarding thread;
the device models run on threads named emu-..., not counted). The
difference cancels start-up and teardown, which are the same in both runs.
U
}

T=10 N1=50000 N2=250000 INJECT=256 KEEP=
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --time) T=${2:?--time needs seconds}; shift 2 ;;
        --n1) N1=${2:?--n1 needs a count}; shift 2 ;;
        --n2) N2=${2:?--n2 needs a count}; shift 2 ;;
        --inject) INJECT=${2:?--inject needs a count}; shift 2 ;;
        --keep) KEEP=${2:?--keep needs a directory}; shift 2 ;;
        *) echo "bench/fwd.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for v in "$N1" "$N2" "$INJECT"; do
    [[ "$v" =~ ^[0-9]+$ ]] || { echo "bench/fwd.sh: '$v' is not a whole number" >&2; exit 2; }
done
[ "$N2" -gt "$N1" ] || { echo "bench/fwd.sh: --n2 must be larger than --n1" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "bench/fwd.sh: valgrind not found (apt-get install valgrind)" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ -n "$KEEP" ]; then mkdir -p "$KEEP"; DIR=$(cd "$KEEP" && pwd); else
    DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT; fi

echo "building release apps..." >&2
cargo build --release -p apps --bin fwd >&2
FWD=$ROOT/target/release/fwd
P1=emu:ixgbe,wire=loop,mac=02:00:00:00:00:01
P2=emu:ixgbe,wire=loop,mac=02:00:00:00:00:02
COMMON=(--batch 32 --inject "$INJECT")

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
echo "callgrind runs: $N1 and $N2 frames..." >&2
read -r F1 I1 E1 M1 < <(cg "$N1")
read -r F2 I2 E2 M2 < <(cg "$N2")
[ -n "$I1" ] && [ -n "$I2" ] && [ -n "$F1" ] && [ -n "$F2" ] && [ -n "$M2" ] ||
    { echo "bench/fwd.sh: could not read the callgrind results in $DIR" >&2; exit 1; }
# The emulated ports' tail writes always run model code on fwd's thread; none
# found means the symbol pattern above no longer matches the model's handler.
[ "$M2" -gt 0 ] ||
    { echo "bench/fwd.sh: no device-model register handler found in the callgrind output (renamed? see the pattern in cg())" >&2; exit 1; }
SLOPE_ALL=$(awk -v a="$I1" -v b="$I2" -v x="$F1" -v y="$F2" 'BEGIN{printf "%.1f", (b-a)/(y-x)}')
SLOPE=$(awk -v a="$((I1 - M1))" -v b="$((I2 - M2))" -v x="$F1" -v y="$F2" 'BEGIN{printf "%.1f", (b-a)/(y-x)}')

cat <<R

fwd, two emulated 82599 ports (threaded models), wire=loop, $INJECT frames
circling, 60-byte frames, batch 32, $(nproc) CPUs

| measure | value |
|---|---|
| timing run: frames forwarded in ${T} s | $TFRAMES |
| timing run: Mpps (first to last frame) | $MPPS |
| callgrind: frames forwarded, run 1 / run 2 | $F1 / $F2 |
| callgrind: main-thread Ir, run 1 / run 2 | $I1 / $I2 |
| callgrind: empty rounds, run 1 / run 2 | $E1 / $E2 |
| callgrind: of which device-model register handlers, run 1 / run 2 | $M1 / $M2 |
| **instructions per forwarded packet, driver + app** (slope) | **$SLOPE** |
| the same with the model's register handlers | $SLOPE_ALL |
| published, ixy (C), 82599, batch 32 | 127 |
| published, ixy.rs, 82599, batch 32 | 209 |
| target | at most 100 |

Instructions per packet = (Ir2 - Ir1) / (frames2 - frames1): the fixed
start-up and teardown of fwd's main thread cancel; the device-model
threads (emu-...) are other callgrind files and are not counted. Empty
rounds (polls that found nothing, then a yield) are included in the slope.
The driver + app figure also leaves out the device model's own code that
the emulated BAR runs on fwd's thread when the driver writes a tail
register (NicModel's mmio_write, inclusive): on a real NIC that register
write is one store.
R
