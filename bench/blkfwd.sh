#!/usr/bin/env bash
# bench/blkfwd.sh: sender CPU time and system calls per GiB of the kernel's
# copy paths (kcopy: read+write, mmap+write, sendfile, splice over TCP
# loopback, file in page cache; UDP with GSO, MSG_ZEROCOPY, io_uring) beside
# blkfwd on emulated devices, interleaved in pairs with a ratio per pair; and
# blkfwd's instructions per frame (callgrind).
set -euo pipefail

usage() {
    cat <<'U'
usage: bench/blkfwd.sh [--size BYTES] [--pairs N] [--short BYTES] [--long BYTES]
                       [--cg-short BYTES] [--cg-mid BYTES] [--cg-long BYTES]
                       [--no-callgrind]

 --size   bytes per kcopy method and per blkfwd CPU run (default 1g)
 --pairs  interleaved pairs (default 5; --runs is the same): pair i runs
          the kernel's paths (kcopy, every method), then blkfwd at MTU 1500,
          9000 and 9000 --spin, so that both sides of a pair see the same
          state of a shared machine. Each pair gives a ratio: the best
          (least CPU per GiB) kernel path of that pair over blkfwd's CPU
          per GiB; the report gives the median ratio and its range. The
          per-method table shows medians [smallest-largest] over the pairs.
 --short, --long  the two stream lengths of the blkfwd system call count
          (default 64m and 256m): the counts must not grow with the length
 --cg-short, --cg-mid, --cg-long  the three stream lengths of the
          callgrind runs (default 16m, 40m and 64m; all different)
 --no-callgrind  leave out the instructions per frame (needs valgrind)

CPU: kcopy reports its sending thread's CPU time, once with its sending and
receiving threads pinned to one CPU and once to two (the placement moves
the kernel's loopback figures by up to four times, and the scheduler's
choice moved with the machine's load; the best path is the least over
methods and both placements); blkfwd its worker
threads' plus its main thread's (not the device models' threads, not the
in-process receiver's). System calls: kcopy counts its own data-path calls.
The kernel paths at MTU 1500 are all of kcopy's methods (TCP loopback, and
UDP with 1472-byte datagrams); at MTU 9000 the TCP ones and UDP with 8972-
byte datagrams. A UDP method the kernel cannot run is listed as such.
blkfwd's idle worker sleeps by default (one clock_nanosleep per wake, which
it counts and reports); with --spin it never sleeps. strace -f on the worker
threads (ids printed by blkfwd) counts their system calls while streaming:
with --spin for two stream lengths (the counts must not grow), and in the
default mode (they must all be the sleeps blkfwd reported). Wakes of an
emulated device's sleeping model thread (a FUTEX_WAKE in its doorbell,
run on the worker; a model thread sleeps when the machine is busy) are
counted apart: they are the model's, and a real device has none.

Instructions per frame (callgrind, deterministic where timing is not):
blkfwd with an inline emulated NVMe drive (its model runs inside the
doorbell write, on the worker thread) and a threaded 82599 port on a pair
wire with no receiver (--recv none: frames leave the port and are
dropped, so no receiver work lands anywhere), at MTU 1500 and 9000, three
stream lengths each. Ir is the worker thread's only (the thread running
Worker::run), less the device models' register handlers run on it
(MmioDevice::mmio_read/mmio_write, inclusive: the NVMe model's whole
command processing and DMA, and the NIC model's tail-register handler; on
real devices each is one store or load). The worker's idle rounds (passes
of its loop that found nothing to do: housekeeping, then a spin or a
sleep; blkfwd reports them as idle_rounds=) depend on scheduling under
valgrind as much as on the stream. So the three runs are fitted as
Ir = fixed + a * frames + b * idle rounds (Cramer's rule on the
differences against the short run): a, the instructions per frame with
the idle rounds apart, is the figure to compare between builds; b is the
cost of an idle round; n/a when the idle rounds grew in step with the
frames, so that the two cannot be told apart, or when b comes out at 0
or below (then the runs' other variation outweighs their idle rounds'
differences; run again). The plain slope
(Ir(long) - Ir(short)) / (frames(long) - frames(short)) is shown too: it
holds the idle rounds. Start-up and teardown cancel in both.
Needs strace (apt-get install strace) and valgrind.
U
}
SIZE=1g SHORT=64m LONG=256m RUNS=5 CGS=16m CGM=40m CGL=64m CALLGRIND=1
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --size) SIZE=${2:?--size needs bytes}; shift 2 ;;
        --pairs|--runs) RUNS=${2:?$1 needs a number}; shift 2 ;;
        --short) SHORT=${2:?--short needs bytes}; shift 2 ;;
        --long) LONG=${2:?--long needs bytes}; shift 2 ;;
        --cg-short) CGS=${2:?--cg-short needs bytes}; shift 2 ;;
        --cg-mid) CGM=${2:?--cg-mid needs bytes}; shift 2 ;;
        --cg-long) CGL=${2:?--cg-long needs bytes}; shift 2 ;;
        --no-callgrind) CALLGRIND=0; shift ;;
        *) echo "bench/blkfwd.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$RUNS" in ''|*[!0-9]*|0) echo "bench/blkfwd.sh: --pairs needs a whole number of at least 1, not '$RUNS'" >&2; exit 2 ;; esac
[ "$CGM" != "$CGS" ] && [ "$CGM" != "$CGL" ] && [ "$CGS" != "$CGL" ] ||
    { echo "bench/blkfwd.sh: --cg-short, --cg-mid and --cg-long must be three different lengths (the fit needs three runs)" >&2; exit 2; }
[ "$CALLGRIND" = 0 ] || command -v valgrind >/dev/null ||
    { echo "bench/blkfwd.sh: valgrind not found (apt-get install valgrind, or --no-callgrind)" >&2; exit 1; }
command -v strace >/dev/null || { echo "bench/blkfwd.sh: strace not found (apt-get install strace)" >&2; exit 1; }
ME=bench/blkfwd.sh
. "$(dirname "$0")/lib.sh"
bench_root ""
cd "$ROOT"
bench_dir ""
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

blk_run() { # MTU LOG [more options] -> the machine line of one blkfwd run, appended to LOG
    local mtu=$1 log=$2; shift 2
    "$BIN/blkfwd" --nvme "emu:nvme,size=$SIZE" --mtu "$mtu" --quiet "$@" >"$DIR/blk.log" 2>&1 ||
        { cat "$DIR/blk.log" >&2; echo "bench/blkfwd.sh: blkfwd failed" >&2; exit 1; }
    grep -q ' 0 mismatched' "$DIR/blk.log" || { cat "$DIR/blk.log" >&2; exit 1; }
    grep '^blkfwd: bytes=' "$DIR/blk.log" >>"$log"
}
kcopy_run() { # LOG [kcopy options] -> kcopy's output appended to LOG
    local log=$1; shift
    "$BIN/kcopy" --size "$SIZE" "$@" >"$DIR/k.log" 2>&1 ||
        { cat "$DIR/k.log" >&2; echo "bench/blkfwd.sh: kcopy failed" >&2; exit 1; }
    cat "$DIR/k.log" >>"$log"
}
# The smallest CPU per GiB among kcopy's machine lines on stdin:
# "cpu method/placement".
best() { sed -n 's/^kcopy: method=\([^ ]*\) placement=\([^ ]*\) .* cpu_s_per_gib=\([^ ]*\).*/\3 \1\/\2/p' | sort -g | head -n 1; }

# Interleaved: pair i is the kernel's paths (A) then blkfwd (B), so both see
# the same state of the shared machine; the ratio is taken per pair.
# The kernel paths at MTU 1500 are all of kcopy's methods, the UDP ones
# with 1472-byte datagrams; at MTU 9000 the TCP ones (loopback TCP does not
# depend on it) and the UDP ones with 8972-byte datagrams.
: >"$DIR/k1500.log" >"$DIR/k9000.log" >"$DIR/b1500.lines" >"$DIR/b9000.lines" >"$DIR/spin.lines" >"$DIR/pairs" >"$DIR/udp-pairs" >"$DIR/apart-pairs"
for i in $(seq "$RUNS"); do
    echo "pair $i of $RUNS: kcopy (every method; UDP at 1472 and 8972 B), then blkfwd at MTU 1500, 9000 and 9000 --spin, $SIZE each..." >&2
    kcopy_run "$DIR/k1500.log" --method all --udp-payload 1472
    cp "$DIR/k.log" "$DIR/k1500.$i"
    kcopy_run "$DIR/k9000.log" --method udp-gso,udp-gso-zerocopy,io-uring --udp-payload 8972
    { grep -E '^kcopy: method=(read-write|mmap-write|sendfile|splice) ' "$DIR/k1500.$i"; cat "$DIR/k.log"; } >"$DIR/k9000.$i"
    grep -q '^kcopy: method=.* placement=' "$DIR/k1500.$i" ||
        { echo "bench/blkfwd.sh: kcopy gave no placement= field (an old build?)" >&2; exit 1; }
    blk_run 1500 "$DIR/b1500.lines"
    blk_run 9000 "$DIR/b9000.lines"
    blk_run 9000 "$DIR/spin.lines" --spin
    read -r kb1500 km1500 < <(best <"$DIR/k1500.$i")
    read -r kb9000 km9000 < <(grep '^kcopy: method=' "$DIR/k9000.$i" | best)
    b1500=$(tail -n 1 "$DIR/b1500.lines" | field cpu_s_per_gib)
    b9000=$(tail -n 1 "$DIR/b9000.lines" | field cpu_s_per_gib)
    [ -n "$kb1500" ] && [ -n "$kb9000" ] && [ -n "$b1500" ] && [ -n "$b9000" ] ||
        { echo "bench/blkfwd.sh: pair $i: could not read the CPU figures" >&2; exit 1; }
    # The best path that puts frames of the MTU on the wire itself (UDP
    # datagrams cut to it): loopback TCP moves 64 KiB segments, never cut.
    read -r ku1500 kum1500 < <(grep -E '^kcopy: method=(udp-|io-uring)' "$DIR/k1500.$i" | best)
    read -r ku9000 kum9000 < <(grep -E '^kcopy: method=(udp-|io-uring)' "$DIR/k9000.$i" | best)
    # The best path with the sending thread on a CPU of its own (`apart`):
    # with both threads on one CPU the receiver's ACK pushes the sender's
    # queued segments in the receiver's context, which kcopy does not
    # count as the sender's (perf: __tcp_push_pending_frames under the
    # receiver's recv), so `same` flatters the kernel.
    read -r ka1500 _ < <(grep -E '^kcopy: method=[^ ]* placement=apart ' "$DIR/k1500.$i" | best)
    read -r ka9000 _ < <(grep -E '^kcopy: method=[^ ]* placement=apart ' "$DIR/k9000.$i" | best)
    [ -n "$ka1500" ] && [ -n "$ka9000" ] && echo "$ka1500 $b1500 $ka9000 $b9000" |
        awk '{ printf "%.2f %.2f\n", $1 / $2, $3 / $4 }' >>"$DIR/apart-pairs"
    [ -n "$ku1500" ] && [ -n "$ku9000" ] ||
        { echo "bench/blkfwd.sh: pair $i: kcopy ran no UDP path" >&2; exit 1; }
    echo "$i $kum1500 $ku1500 $b1500 $kum9000 $ku9000 $b9000" | awk '{
        printf "%s %s %s %s %.2f %s %s %s %.2f\n", $1, $2, $3, $4, $3 / $4, $5, $6, $7, $6 / $7 }' >>"$DIR/udp-pairs"
    echo "$i $km1500 $kb1500 $b1500 $km9000 $kb9000 $b9000" | awk '{
        printf "%s %s %s %s %.2f %s %s %s %.2f\n", $1, $2, $3, $4, $3 / $4, $5, $6, $7, $6 / $7 }' >>"$DIR/pairs"
done
rows=()
for mp in $(sed -n 's/^kcopy: method=\([^ ]*\) placement=\([^ ]*\) .*/\1:\2/p' "$DIR/k1500.log" | awk '!seen[$0]++'); do
    m=${mp%%:*} p=${mp#*:}
    cpu=$(grep "^kcopy: method=$m placement=$p " "$DIR/k1500.log" | field cpu_s_per_gib | median --spread)
    sc=$(grep "^kcopy: method=$m placement=$p " "$DIR/k1500.log" | field syscalls_per_gib | median)
    case $m in
        udp-*|io-uring)
            cpu9=$(grep "^kcopy: method=$m placement=$p " "$DIR/k9000.log" | field cpu_s_per_gib | median --spread)
            sc9=$(grep "^kcopy: method=$m placement=$p " "$DIR/k9000.log" | field syscalls_per_gib | median)
            rows+=("| $m, threads $p (kernel, UDP loopback, 1472 B datagrams) | $cpu | $sc |")
            rows+=("| $m, threads $p (kernel, UDP loopback, 8972 B datagrams) | $cpu9 | $sc9 |") ;;
        *) rows+=("| $m, threads $p (kernel, TCP loopback) | $cpu | $sc |") ;;
    esac
done
UNSUPPORTED=$(sed -n 's/^kcopy: unsupported method=\([^ ]*\) reason=\(.*\)/  \1: \2/p' "$DIR/k1500.log" "$DIR/k9000.log" | sort -u)

blk_cpu() { # LINES -> "cpu (spread)", GiB/s (median) and sleeps per GiB (median)
    local cpu gib sleeps bytes
    cpu=$(field cpu_s_per_gib <"$1" | median --spread)
    gib=$(field gib_per_s <"$1" | median)
    bytes=$(field bytes <"$1" | head -n 1)
    sleeps=$(field sleeps <"$1" | median)
    echo "$cpu|$gib|$(awk -v s="$sleeps" -v b="$bytes" 'BEGIN { printf "%.0f", s * 1073741824 / b }')"
}
# length, mode (spin|sleep) -> worker syscalls: whole thread, streaming
# window, window calls that are neither clock_nanosleep nor a device wake,
# sleeps reported, device wakes in the window. A device wake is a
# FUTEX_WAKE: the emulated device's doorbell waking its model's sleeping
# thread (emu's DeviceWaker), the model's cost run on the worker; a real
# device's doorbell is one store.
blk_calls() {
    local spin=(); [ "$2" = spin ] && spin=(--spin)
    strace -f -qq -o "$DIR/st-$1-$2" "$BIN/blkfwd" --nvme "emu:nvme,size=$1" --mtu 9000 --quiet "${spin[@]}" >"$DIR/sc-$1-$2.log" 2>&1 ||
        { cat "$DIR/sc-$1-$2.log" >&2; exit 1; }
    # Whole thread, and the streaming window: between the worker's two
    # CPU-clock reads (clock_gettime), which bracket its loop.
    local all=0 win=0 other=0 wakes=0 t
    for t in $(sed -n 's/^threads: *sender thread ids //p' "$DIR/sc-$1-$2.log" | tr ',' ' '); do
        grep "^$t " "$DIR/st-$1-$2" | grep -v 'resumed>' >"$DIR/t-$t" || true
        all=$((all + $(wc -l <"$DIR/t-$t")))
        awk '/clock_gettime/ {c++; next} c == 1' "$DIR/t-$t" >"$DIR/w-$t"
        win=$((win + $(wc -l <"$DIR/w-$t")))
        other=$((other + $(grep -v 'clock_nanosleep' "$DIR/w-$t" | grep -vc 'FUTEX_WAKE' || true)))
        wakes=$((wakes + $(grep -c 'FUTEX_WAKE' "$DIR/w-$t" || true)))
    done
    echo "$all $win $other $(grep '^blkfwd: bytes=' "$DIR/sc-$1-$2.log" | field sleeps) $wakes"
}
IFS='|' read -r C1500 G1500 S1500 < <(blk_cpu "$DIR/b1500.lines")
IFS='|' read -r C9000 G9000 S9000 < <(blk_cpu "$DIR/b9000.lines")
IFS='|' read -r CSPIN GSPIN _ < <(blk_cpu "$DIR/spin.lines")
echo "blkfwd: system calls, $SHORT and $LONG streams under strace..." >&2
read -r S_SHORT W_SHORT O_SHORT _ F_SHORT < <(blk_calls "$SHORT" spin)
read -r S_LONG W_LONG O_LONG _ F_LONG < <(blk_calls "$LONG" spin)
read -r _ W_SLEEP O_SLEEP N_SLEEP F_SLEEP < <(blk_calls "$LONG" sleep)

# One callgrind run: MTU LENGTH -> "FRAMES IR MODEL SLEEPS IDLE_ROUNDS".
cg_frames() {
    local mtu=$1 len=$2 d=$DIR/cg-$1-$2
    mkdir -p "$d"
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$d/callgrind.out.%p" \
        "$BIN/blkfwd" --nvme "emu:nvme,size=$len,mode=inline" --nic "emu:ixgbe,wire=pair:cg$$" \
        --recv none --mtu "$mtu" --quiet >"$d/log" 2>&1 ||
        { cat "$d/log" >&2; echo "bench/blkfwd.sh: callgrind run (MTU $mtu, $len) failed" >&2; exit 1; }
    local worker
    worker=$(grep -l 'sender::Worker<RN,RC>::run' "$d"/callgrind.out.*-* | head -n 1)
    [ -n "$worker" ] || { echo "bench/blkfwd.sh: no worker-thread file (Worker::run) in $d" >&2; exit 1; }
    local frames ir model sleeps idle
    frames=$(grep '^blkfwd: bytes=' "$d/log" | field frames)
    sleeps=$(grep '^blkfwd: bytes=' "$d/log" | field sleeps)
    idle=$(grep '^blkfwd: bytes=' "$d/log" | field idle_rounds)
    [ -n "$idle" ] ||
        { echo "bench/blkfwd.sh: no idle_rounds= in blkfwd's machine line (MTU $mtu, $len): a blkfwd older than this script?" >&2; exit 1; }
    ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$worker")
    model=$(callgrind_annotate --inclusive=yes "$worker" 2>/dev/null |
        awk '/MmioDevice( for [^ ]+)?>::mmio_(read|write) \[/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')
    echo "$frames $ir $model $sleeps $idle"
}
CG_ROWS=()
if [ "$CALLGRIND" = 1 ]; then
    for mtu in 1500 9000; do
        echo "blkfwd: callgrind, MTU $mtu, $CGS, $CGM and $CGL streams..." >&2
        read -r f1 i1 m1 s1 e1 < <(cg_frames "$mtu" "$CGS")
        read -r f2 i2 m2 s2 e2 < <(cg_frames "$mtu" "$CGL")
        read -r f3 i3 m3 s3 e3 < <(cg_frames "$mtu" "$CGM")
        [ -n "$f1" ] && [ -n "$f2" ] && [ -n "$f3" ] && [ -n "$i1" ] && [ -n "$i2" ] && [ -n "$i3" ] &&
            [ -n "$e1" ] && [ -n "$e2" ] && [ -n "$e3" ] && [ "$f2" -gt "$f1" ] ||
            { echo "bench/blkfwd.sh: could not read the callgrind runs at MTU $mtu in $DIR (--cg-long must be longer than --cg-short)" >&2; exit 1; }
        [ "$m2" -gt 0 ] ||
            { echo "bench/blkfwd.sh: no device-model register handler in the callgrind output (renamed? see cg_frames)" >&2; exit 1; }
        per=$(awk -v a="$((i1 - m1))" -v b="$((i2 - m2))" -v x="$f1" -v y="$f2" 'BEGIN { printf "%.1f", (b - a) / (y - x) }')
        all=$(awk -v a="$i1" -v b="$i2" -v x="$f1" -v y="$f2" 'BEGIN { printf "%.1f", (b - a) / (y - x) }')
        # Ir - model = fixed + a * frames + b * idle rounds (bench/lib.sh).
        read -r fit_frame fit_idle < <(fit3 "$f1" "$f2" "$f3" "$e1" "$e2" "$e3" \
            "$((i1 - m1))" "$((i2 - m2))" "$((i3 - m3))")
        CG_ROWS+=("| $mtu | $f1 / $f3 / $f2 | $i1 / $i3 / $i2 | $m1 / $m3 / $m2 | $s1 / $s3 / $s2 | $e1 / $e3 / $e2 | **$fit_frame** | $fit_idle | $per | $all |")
    done
fi

PAIRS_TABLE=$(awk '{ printf "| %s | %s %s | %s | **%s** | %s %s | %s | **%s** |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$DIR/pairs")
R1500=$(awk '{ print $5 }' "$DIR/pairs" | median --spread)
R9000=$(awk '{ print $9 }' "$DIR/pairs" | median --spread)
UDP_TABLE=$(awk '{ printf "| %s | %s %s | **%s** | %s %s | **%s** |\n", $1, $2, $3, $5, $6, $7, $9 }' "$DIR/udp-pairs")
U1500=$(awk '{ print $5 }' "$DIR/udp-pairs" | median --spread)
U9000=$(awk '{ print $9 }' "$DIR/udp-pairs" | median --spread)
if [ -s "$DIR/apart-pairs" ]; then
    A1500=$(awk '{ print $1 }' "$DIR/apart-pairs" | median --spread)
    A9000=$(awk '{ print $2 }' "$DIR/apart-pairs" | median --spread)
else
    A1500="n/a (one CPU)" A9000="n/a (one CPU)"
fi
cat <<R

Sender CPU seconds and system calls per GiB, $(nproc) CPUs; CPU: median of $RUNS interleaved pair(s) [smallest-largest]

| sender | CPU s per GiB | system calls per GiB |
|---|---|---|
$(printf '%s\n' "${rows[@]}")
| blkfwd, emulated NVMe + 82599, MTU 1500 ($G1500 GiB/s) | $C1500 | $S1500 (sleeps of an idle worker) |
| blkfwd, emulated NVMe + 82599, MTU 9000 ($G9000 GiB/s) | $C9000 | $S9000 (sleeps of an idle worker) |
| blkfwd --spin, MTU 9000 ($GSPIN GiB/s) | $CSPIN | $O_SHORT / $O_LONG while streaming $SHORT / $LONG, besides wakes of sleeping emulated-device threads |
${UNSUPPORTED:+
Kernel paths not measured here (the kernel refused them):
$UNSUPPORTED
}
Per pair: the best kernel path of the pair (least CPU per GiB) over blkfwd's CPU per GiB

| pair | best kernel path, MTU 1500 | blkfwd MTU 1500 | ratio | best kernel path, MTU 9000 | blkfwd MTU 9000 | ratio |
|---|---|---|---|---|---|---|
$PAIRS_TABLE

Ratio, median [range] of $RUNS pair(s): MTU 1500 **$R1500**, MTU 9000 **$R9000** (targets: at least 5 and 15)

The same against the best kernel path that cuts the stream into frames of
the MTU itself (UDP datagrams of 1472 / 8972 bytes; loopback TCP sends
64 KiB segments that nothing cuts, as a NIC with TSO would on a wire):

| pair | best UDP path, MTU 1500 | ratio | best UDP path, MTU 9000 | ratio |
|---|---|---|---|---|
$UDP_TABLE

Ratio against the best UDP path, median [range]: MTU 1500 **$U1500**, MTU 9000 **$U9000**

Against the best kernel path with its sending thread on a CPU of its own
(placement apart; with both threads on one CPU the receiver's thread does
part of the sender's transmit work, uncounted), median [range]: MTU 1500
**$A1500**, MTU 9000 **$A9000**

blkfwd worker threads' system calls under strace (MTU 9000):
  --spin, $SHORT / $LONG stream, while streaming: $W_SHORT / $W_LONG (whole thread, with start-up and teardown: $S_SHORT / $S_LONG),
    of which $F_SHORT / $F_LONG wakes of a sleeping emulated-device thread (FUTEX_WAKE from the model's doorbell; none on a real device) and $O_SHORT / $O_LONG others
  default, $LONG stream, while streaming: $W_SLEEP: $N_SLEEP sleeps reported by blkfwd, $F_SLEEP emulated-device wakes, $O_SLEEP others
R
if [ "$CALLGRIND" = 1 ]; then
    cat <<R

blkfwd instructions per frame (callgrind; inline emulated NVMe, threaded 82599 on a pair wire, --recv none; worker thread only; streams of $CGS / $CGM / $CGL)

| MTU | frames | worker-thread Ir | of which device-model register handlers | worker sleeps | worker idle rounds | **instructions per frame, driver + app, idle rounds apart** (fit of the three runs) | instructions per idle round (fit) | instructions per frame, driver + app, idle rounds included (slope of $CGS and $CGL) | the same with the models |
|---|---|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${CG_ROWS[@]}")

Fit: Ir - models = fixed + a * frames + b * idle rounds over the three
runs (n/a when the idle rounds grew in step with the frames, or when b
came out at 0 or below, shown: an idle round costs something, so the
runs' other variation outweighed their idle rounds' differences; run again).

Target (issue 15): at most 100 instructions per frame at MTU 1500.
R
fi
