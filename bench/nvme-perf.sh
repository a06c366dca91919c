#!/usr/bin/env bash
# bench/nvme-perf.sh: the README's nvme-perf figure (4 KiB random reads,
# queue depth 64, one queue pair, over a filled 1 GiB emulated namespace):
# IOPS and the driver thread's CPU time per I/O, over several runs, as a
# median with the range. With --base DIR it also runs DIR's build in turn
# (A B A B ...) and prints each pair's ratio, so a change is judged against
# the code before it on the same machine in the same session.
set -euo pipefail

usage() {
    cat <<'U'
usage: bench/nvme-perf.sh [--runs N] [--time S] [--base DIR] [--keep DIR]

 --runs N    runs of each build (default 3)
 --time S    seconds per run after the fill (default 10)
 --base DIR  another checkout of this repository to compare with; its
             release build is made first (cargo build --release in DIR)
 --keep DIR  keep each run's output in DIR

Prints, for this tree (and the base): IOPS and driver CPU ns per I/O,
median [smallest-largest]; with --base, per pair: this / base for both.
A ratio of IOPS above 1 and of CPU per I/O below 1 favour this tree.
U
}

RUNS=3 T=10 BASE= KEEP=
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --runs) RUNS=${2:?--runs needs a count}; shift 2 ;;
        --time) T=${2:?--time needs seconds}; shift 2 ;;
        --base) BASE=${2:?--base needs a directory}; shift 2 ;;
        --keep) KEEP=${2:?--keep needs a directory}; shift 2 ;;
        *) echo "bench/nvme-perf.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$RUNS$T" in *[!0-9]*) echo "bench/nvme-perf.sh: --runs and --time take whole numbers" >&2; exit 2 ;; esac
[ "$RUNS" -ge 1 ] && [ "$T" -ge 1 ] || { echo "bench/nvme-perf.sh: --runs and --time must be at least 1" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${KEEP:-$(mktemp -d)}
mkdir -p "$OUT"
[ -n "$KEEP" ] || trap 'rm -rf "$OUT"' EXIT

build() {
    (cd "$1" && cargo build --release -p apps --bin nvme-perf >&2)
}
build "$ROOT"
if [ -n "$BASE" ]; then
    [ -d "$BASE" ] || { echo "bench/nvme-perf.sh: --base $BASE is not a directory" >&2; exit 2; }
    build "$BASE"
fi

# One run: prints "IOPS NS_PER_IO".
run() {
    local bin=$1 log=$2
    "$bin" emu:nvme,size=1G --fill --time "$T" --bs 4k --qd 64 >"$log" 2>&1 || {
        echo "bench/nvme-perf.sh: $bin failed; its output:" >&2
        cat "$log" >&2
        exit 1
    }
    awk '/^IOPS:/ {iops = $2} /^driver CPU:/ {for (i = 1; i <= NF; i++) if ($i == "ns") ns = $(i - 1)}
        END {if (iops == "" || ns == "") exit 1; print iops, ns}' "$log" || {
        echo "bench/nvme-perf.sh: no IOPS or driver CPU line in $log" >&2
        exit 1
    }
}

# median [min-max] of the numbers on stdin
spread() {
    sort -g | awk '{v[NR] = $1} END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%s [%s-%s]", m, v[1], v[NR]}'
}

: >"$OUT/this" >"$OUT/base" >"$OUT/ratio"
for i in $(seq 1 "$RUNS"); do
    r=$(run "$ROOT/target/release/nvme-perf" "$OUT/this.$i.log")
    echo "$r" >>"$OUT/this"
    echo "run $i this: IOPS ${r% *}, driver CPU ${r#* } ns per I/O" >&2
    if [ -n "$BASE" ]; then
        b=$(run "$BASE/target/release/nvme-perf" "$OUT/base.$i.log")
        echo "$b" >>"$OUT/base"
        echo "run $i base: IOPS ${b% *}, driver CPU ${b#* } ns per I/O" >&2
        echo "$r $b" | awk '{printf "%.3f %.3f\n", $1 / $3, $2 / $4}' >>"$OUT/ratio"
    fi
done

echo "nvme-perf emu:nvme,size=1G --fill --time $T (4 KiB random reads, qd 64), $RUNS runs"
echo "this: IOPS $(cut -d' ' -f1 "$OUT/this" | spread), driver CPU ns per I/O $(cut -d' ' -f2 "$OUT/this" | spread)"
if [ -n "$BASE" ]; then
    echo "base: IOPS $(cut -d' ' -f1 "$OUT/base" | spread), driver CPU ns per I/O $(cut -d' ' -f2 "$OUT/base" | spread)"
    echo "this/base by pair: IOPS $(cut -d' ' -f1 "$OUT/ratio" | spread), CPU per I/O $(cut -d' ' -f2 "$OUT/ratio" | spread)"
fi
