#!/usr/bin/env bash
# bench/blkfwd.sh: sender CPU time and system calls per GiB of the kernel's
# copy paths (kcopy: read+write, mmap+write, sendfile, splice over TCP
# loopback, file in page cache) beside blkfwd on emulated devices.
set -euo pipefail

usage() {
    cat <<'U'
usage: bench/blkfwd.sh [--size BYTES] [--runs N] [--short BYTES] [--long BYTES]

 --size   bytes per kcopy method and per blkfwd CPU run (default 1g)
 --runs   runs of each sender; the table shows the median CPU time and the
          smallest and largest in brackets (default 3)
 --short, --long  the two stream lengths of the blkfwd system call count
          (default 64m and 256m): the counts must not grow with the length

CPU: kcopy reports its sending thread's CPU time; blkfwd its worker
threads' plus its main thread's (not the device models' threads, not the
in-process receiver's). System calls: kcopy counts its own data-path calls.
blkfwd's idle worker sleeps by default (one clock_nanosleep per wake, which
it counts and reports); with --spin it never sleeps. strace -f on the worker
threads (ids printed by blkfwd) counts their system calls while streaming:
with --spin for two stream lengths (the counts must not grow), and in the
default mode (they must all be the sleeps blkfwd reported).
Needs strace (apt-get install strace).
U
}
SIZE=1g SHORT=64m LONG=256m RUNS=3
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --size) SIZE=${2:?--size needs bytes}; shift 2 ;;
        --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
        --short) SHORT=${2:?--short needs bytes}; shift 2 ;;
        --long) LONG=${2:?--long needs bytes}; shift 2 ;;
        *) echo "bench/blkfwd.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$RUNS" in ''|*[!0-9]*|0) echo "bench/blkfwd.sh: --runs needs a whole number of at least 1, not '$RUNS'" >&2; exit 2 ;; esac
command -v strace >/dev/null || { echo "bench/blkfwd.sh: strace not found (apt-get install strace)" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
echo "building release kcopy and blkfwd..." >&2
cargo build --release -p kcopy -p apps --bin kcopy --bin blkfwd >&2
BIN=$ROOT/target/release

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
# The median of the numbers on stdin; with --spread "median [min-max]".
median() {
    sort -g | awk -v spread="${1:-}" '{v[NR] = $1} END {
        m = v[int((NR + 1) / 2)]
        if (spread == "" || NR == 1) print m; else printf "%s [%s-%s]\n", m, v[1], v[NR] }'
}

echo "kcopy: every method, $SIZE, $RUNS run(s)..." >&2
: >"$DIR/kcopy.log"
for _ in $(seq "$RUNS"); do
    "$BIN/kcopy" --method all --size "$SIZE" >>"$DIR/kcopy.log" 2>&1 || { cat "$DIR/kcopy.log" >&2; exit 1; }
done
rows=()
for m in $(grep '^kcopy: method=' "$DIR/kcopy.log" | sed -n 's/^kcopy: method=\([^ ]*\).*/\1/p' | awk '!seen[$0]++'); do
    cpu=$(grep "^kcopy: method=$m " "$DIR/kcopy.log" | field cpu_s_per_gib | median --spread)
    sc=$(grep "^kcopy: method=$m " "$DIR/kcopy.log" | field syscalls_per_gib | head -n 1)
    rows+=("| $m (kernel, TCP loopback) | $cpu | $sc |")
done
SENDFILE=$(grep '^kcopy: method=sendfile' "$DIR/kcopy.log" | field cpu_s_per_gib | median)

blk_cpu() { # MTU [more options] -> "cpu (spread)", GiB/s (median) and sleeps per GiB (median)
    local mtu=$1; shift
    : >"$DIR/blk.lines"
    for _ in $(seq "$RUNS"); do
        "$BIN/blkfwd" --nvme "emu:nvme,size=$SIZE" --mtu "$mtu" --quiet "$@" >"$DIR/blk.log" 2>&1 ||
            { cat "$DIR/blk.log" >&2; echo "bench/blkfwd.sh: blkfwd failed" >&2; exit 1; }
        grep -q ' 0 mismatched' "$DIR/blk.log" || { cat "$DIR/blk.log" >&2; exit 1; }
        grep '^blkfwd: bytes=' "$DIR/blk.log" >>"$DIR/blk.lines"
    done
    local cpu gib sleeps bytes
    cpu=$(field cpu_s_per_gib <"$DIR/blk.lines" | median --spread)
    gib=$(field gib_per_s <"$DIR/blk.lines" | median)
    bytes=$(field bytes <"$DIR/blk.lines" | head -n 1)
    sleeps=$(field sleeps <"$DIR/blk.lines" | median)
    echo "$cpu|$gib|$(awk -v s="$sleeps" -v b="$bytes" 'BEGIN { printf "%.0f", s * 1073741824 / b }')"
}
blk_calls() { # length, mode (spin|sleep) -> worker syscalls: whole thread, streaming window, window calls that are not clock_nanosleep, sleeps reported
    local spin=(); [ "$2" = spin ] && spin=(--spin)
    strace -f -qq -o "$DIR/st-$1-$2" "$BIN/blkfwd" --nvme "emu:nvme,size=$1" --mtu 9000 --quiet "${spin[@]}" >"$DIR/sc-$1-$2.log" 2>&1 ||
        { cat "$DIR/sc-$1-$2.log" >&2; exit 1; }
    # Whole thread, and the streaming window: between the worker's two
    # CPU-clock reads (clock_gettime), which bracket its loop.
    local all=0 win=0 other=0 t
    for t in $(sed -n 's/^threads: *sender thread ids //p' "$DIR/sc-$1-$2.log" | tr ',' ' '); do
        grep "^$t " "$DIR/st-$1-$2" | grep -v 'resumed>' >"$DIR/t-$t" || true
        all=$((all + $(wc -l <"$DIR/t-$t")))
        awk '/clock_gettime/ {c++; next} c == 1' "$DIR/t-$t" >"$DIR/w-$t"
        win=$((win + $(wc -l <"$DIR/w-$t")))
        other=$((other + $(grep -vc 'clock_nanosleep' "$DIR/w-$t" || true)))
    done
    echo "$all $win $other $(grep '^blkfwd: bytes=' "$DIR/sc-$1-$2.log" | field sleeps)"
}
echo "blkfwd: CPU runs at MTU 1500 and 9000 (and 9000 with --spin), $SIZE..." >&2
IFS='|' read -r C1500 G1500 S1500 < <(blk_cpu 1500)
IFS='|' read -r C9000 G9000 S9000 < <(blk_cpu 9000)
IFS='|' read -r CSPIN GSPIN _ < <(blk_cpu 9000 --spin)
echo "blkfwd: system calls, $SHORT and $LONG streams under strace..." >&2
read -r S_SHORT W_SHORT _ _ < <(blk_calls "$SHORT" spin)
read -r S_LONG W_LONG _ _ < <(blk_calls "$LONG" spin)
read -r _ W_SLEEP O_SLEEP N_SLEEP < <(blk_calls "$LONG" sleep)

cat <<R

Sender CPU seconds and system calls per GiB, $(nproc) CPUs; CPU: median of $RUNS run(s) [smallest-largest]

| sender | CPU s per GiB | system calls per GiB |
|---|---|---|
$(printf '%s\n' "${rows[@]}")
| blkfwd, emulated NVMe + 82599, MTU 1500 ($G1500 GiB/s) | $C1500 | $S1500 (sleeps of an idle worker) |
| blkfwd, emulated NVMe + 82599, MTU 9000 ($G9000 GiB/s) | $C9000 | $S9000 (sleeps of an idle worker) |
| blkfwd --spin, MTU 9000 ($GSPIN GiB/s) | $CSPIN | $W_SHORT / $W_LONG while streaming $SHORT / $LONG (one-time) |

blkfwd worker threads' system calls under strace (MTU 9000):
  --spin, $SHORT / $LONG stream, while streaming: $W_SHORT / $W_LONG (whole thread, with start-up and teardown: $S_SHORT / $S_LONG)
  default, $LONG stream, while streaming: $W_SLEEP, of which $O_SLEEP not clock_nanosleep; blkfwd reported $N_SLEEP sleeps
Target: blkfwd CPU per GiB at most a tenth of sendfile's (median $SENDFILE / 10 = $(awk -v s="$SENDFILE" 'BEGIN { printf "%.4f", s / 10 }')).
R
