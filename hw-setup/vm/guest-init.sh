#!/bin/sh
# guest-init.sh - /init of the real-VFIO lane's guest (busybox sh, POSIX).
#
# Loads the VFIO modules, binds the NVMe controllers and igb ports to
# vfio-pci, reserves hugepages and runs our apps against QEMU's devices.
# Each check prints "RESULT name PASS|FAIL detail" on the console and on
# the second serial port (/dev/ttyS1, a file on the host, which
# hw-setup/vm/run.sh parses); reads print "SUM name sha256 exit" there for
# the host to compare with the disk images. Last line: "LANE DONE".
#
# Kernel command line: lane.mode=check (checks, power off), keep (checks,
# then a shell), shell (bind and reserve only, then a shell), run (bind and
# reserve, run /lane-cmd, power off), noiommu (the checks of VFIO's
# no-IOMMU mode, in a boot without IOMMU; power off).

# shellcheck shell=dash disable=SC1091,SC2012,SC2013,SC2086,SC3045
# (busybox ash: like dash, with local and ulimit -l; word splitting of the
# ;-separated lists in lane.conf is meant)

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
. /lane.conf

MODE=check
for w in $(cat /proc/cmdline); do
    case "$w" in lane.mode=*) MODE=${w#lane.mode=} ;; esac
done

# The results channel: the second serial port, raw (no \n -> \r\n).
stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec 3>/dev/ttyS1

say() { echo "$*"; echo "$*" >&3; }
result() { # name PASS|FAIL detail...
    say "RESULT $*"
}
# Run a command with a time limit, its output indented on the console and
# kept in /tmp/out; returns its exit status.
run() {
    echo "  \$ $*"
    timeout "${LIMIT:-60}" "$@" >/tmp/out 2>&1
    rc=$?
    sed 's/^/    /' /tmp/out
    return $rc
}

finish() {
    say "LANE DONE"
    if [ "$MODE" = check ]; then
        # The last close of the port waits until its bytes are sent.
        exec 3>&-
        sync
        poweroff -f
    fi
    echo "guest: shell; 'poweroff -f' (or Ctrl-A X) ends the guest"
    setsid cttyhack sh -l
    poweroff -f
}

echo "guest: $(uname -sr) up after $(cut -d' ' -f1 /proc/uptime) s; $(grep -c ^processor /proc/cpuinfo) CPU(s), $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) MiB"
# The no-IOMMU boot (lane.mode=noiommu): its checks are named noiommu-*.
P=""
[ "$MODE" = noiommu ] && P=noiommu-
result ${P}boot PASS "$(uname -r), command line: $(cat /proc/cmdline)"

# ---------------------------------------------------------------- modules ---

# In the no-IOMMU boot vfio is the build with no-IOMMU mode (run.sh),
# loaded with it on.
ok=PASS
for m in $(cat /lib/modules/order); do
    if [ -n "$P" ] && [ "$m" = vfio ]; then
        insmod /lib/modules/noiommu/vfio.ko enable_unsafe_noiommu_mode=1 || ok=FAIL
    elif ! insmod "/lib/modules/$m.ko"; then ok=FAIL; fi
done
if [ -n "$P" ] && [ "$(cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode 2>&1)" != Y ]; then
    ok=FAIL
fi
result ${P}modules $ok "insmod $(tr '\n' ' ' </lib/modules/order)${P:+(vfio with enable_unsafe_noiommu_mode=$(cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode 2>&1))}"

# The IOMMU: the kernel found intel-iommu and made groups (none in the
# no-IOMMU boot).
groups=$(ls /sys/kernel/iommu_groups 2>/dev/null | wc -l)
if [ -n "$P" ]; then
    if [ "$(ls /sys/class/iommu 2>/dev/null | wc -l)" = 0 ] && [ "$groups" = 0 ]; then
        result noiommu-no-iommu PASS "no IOMMU and no IOMMU group before binding"
    else
        result noiommu-no-iommu FAIL "the guest has an IOMMU: $(ls /sys/class/iommu | tr '\n' ' ')$groups groups"
    fi
elif [ -d /sys/class/iommu ] && [ "$(ls /sys/class/iommu | wc -l)" -gt 0 ] && [ "$groups" -gt 0 ]; then
    result iommu PASS "$(ls /sys/class/iommu | tr '\n' ' ')with $groups IOMMU groups"
else
    result iommu FAIL "no IOMMU (is intel_iommu=on on the kernel command line?)"
fi
dmesg | grep -E 'DMAR: (IOMMU enabled|Intel\(R\) Virtualization)|VFIO' | sed 's/^/  kernel: /'

# ---------------------------------------------------------------- binding ---

echo "guest: PCI functions"
for d in /sys/bus/pci/devices/*; do
    drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null)
    echo "  $(basename "$d") $(sed 's/^0x//' "$d/vendor"):$(sed 's/^0x//' "$d/device") class $(sed 's/^0x//' "$d/class") driver ${drv:--}"
done

# bind NAME ADDR: driver_override + drivers_probe (the IDs of NVMe drives are
# not in vfio-pci's table, so new_id would not do), then check the link.
bind() {
    d=/sys/bus/pci/devices/$2
    if [ ! -d "$d" ]; then
        result "${P}bind-$1" FAIL "$2 does not exist"
        return
    fi
    ids="$(sed 's/^0x//' "$d/vendor"):$(sed 's/^0x//' "$d/device")"
    if [ -e "$d/driver" ]; then echo "$2" >"$d/driver/unbind"; fi
    echo vfio-pci >"$d/driver_override"
    echo "$2" >/sys/bus/pci/drivers_probe
    drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null)
    group=$(basename "$(readlink "$d/iommu_group" 2>/dev/null)" 2>/dev/null)
    node=/dev/vfio/$group
    [ -n "$P" ] && node=/dev/vfio/noiommu-$group
    if [ "$drv" = vfio-pci ] && [ -c "$node" ]; then
        result "${P}bind-$1" PASS "$2 ($ids) bound to vfio-pci, IOMMU group $group, $node"
    else
        result "${P}bind-$1" FAIL "$2 ($ids): driver '${drv:-none}', group '${group:-none}'; $(dmesg | grep "$2" | tail -n 1)"
    fi
}
bind nvme0 "$NVME0"
if [ -z "$P" ]; then
    bind nvme1 "$NVME1"
    bind nvme2 "$NVME2"
    bind nvme3 "$NVME3"
fi
bind igb0 "$IGB0"
bind igb1 "$IGB1"
ls -l /dev/vfio | sed 's/^/  /'

group_of() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"; }

# -------------------------------------------------------------- hugepages ---

echo "$HUGEPAGES" >/proc/sys/vm/nr_hugepages
got=$(cat /proc/sys/vm/nr_hugepages)
if [ "$got" -ge "$HUGEPAGES" ]; then
    result ${P}hugepages PASS "$got x 2 MiB reserved"
else
    result ${P}hugepages FAIL "asked for $HUGEPAGES x 2 MiB, got $got"
fi

if [ "$MODE" = shell ]; then
    finish
fi
if [ "$MODE" = run ]; then
    echo "guest: running /lane-cmd: $(cat /lane-cmd)"
    sh /lane-cmd
    echo "guest: exit $?"
    MODE=check
    finish
fi

# A receiver started in the background (PID, writing OUT) is ready once
# OUT has its banner line "NAME: ...": wait for it up to 30 s, or until the
# receiver exits; show what it printed. True if the banner came.
started() { # PID OUT NAME
    local i=0
    while ! grep -q "^$3:" "$2" && kill -0 "$1" 2>/dev/null && [ "$i" -lt 300 ]; do
        usleep 100000
        i=$((i + 1))
    done
    sed 's/^/    /' "$2"
    grep -q "^$3:" "$2"
}

# blkfwd streams a range of nvme0 out of igb0 (no CPU copy: the drive DMAs
# into the read buffers, the NIC DMAs the frames out of them); blkrecv on
# igb1 (started first, until its banner) checks that every byte of the range
# arrived once with good checksums (--expect none: the host compares the
# bytes with its disk image, from the wire's dump). Each stream has its own
# UDP port, so the receivers here and on the host tell it from the rest of
# the wire (pktgen's frames, the other stream).
blkfwd_check() { # NAME NSID START_BLOCK LENGTH MTU DST_PORT (BLOCK_SIZE)
    local name="$1" nsid="$2" start="$3" len="$4" mtu="$5" port="$6" prc sent frames
    # The checks' names: blkfwd-NAME and blkrecv-NAME unless BF_FWD and
    # BF_RECV name them.
    local fwd="${BF_FWD:-blkfwd-$name}" recv="${BF_RECV:-blkrecv-$name}"
    echo "== check $fwd, $recv"
    echo "  \$ blkrecv $IGB1 --dst-port $port --mtu $mtu --expect none --laps 1 --quiet &"
    timeout 150 blkrecv "$IGB1" --dst-port "$port" --mtu "$mtu" --expect none --laps 1 \
        --wait 120 --idle-exit 10 --quiet >/tmp/recv.out 2>&1 &
    recv_pid=$!
    if ! started "$recv_pid" /tmp/recv.out blkrecv; then
        kill "$recv_pid" 2>/dev/null
        wait "$recv_pid"
        result "$fwd" FAIL "not run: blkrecv on $IGB1 did not start: $(tail -n 1 /tmp/recv.out)"
        result "$recv" FAIL "blkrecv on $IGB1 did not start within 30 s: $(tail -n 1 /tmp/recv.out)"
        return
    fi
    # --dst-mac broadcast: on a real port blkfwd would ask --dst-ip by ARP,
    # which blkrecv does not answer; igb1 receives in promiscuous mode.
    if LIMIT=120 run blkfwd --nvme "$NVME0" --nic "$IGB0" --nsid "$nsid" --start "$start" \
        --length "$len" --mtu "$mtu" --dst-port "$port" --rate "$BLKFWD_RATE" \
        --dst-mac broadcast --quiet &&
        grep -q '^errors: *0 range(s) not sent' /tmp/out &&
        grep -q "^blkfwd: bytes=$len frames=[0-9]* .*errors=0 " /tmp/out; then
        sent=$(sed -n 's/^blkfwd: \(bytes=[0-9]* frames=[0-9]* ios=[0-9]* errors=[0-9]* retries=[0-9]*\).*/\1/p' /tmp/out)
        result "$fwd" PASS "$NVME0 nsid $nsid blocks from $start, $len bytes, MTU $mtu, $BLKFWD_RATE Mbit/s -> $IGB0 port $port: $sent, no failed range"
    else
        result "$fwd" FAIL "exit $rc: $(grep -E '^(error|errors|  failed|blkfwd: bytes)' /tmp/out | head -n 4 | tr '\n' ' ')"
    fi
    frames=$(sed -n 's/^blkfwd: bytes=[0-9]* frames=\([0-9]*\) .*/\1/p' /tmp/out)
    # Nothing sent: nothing to wait for (blkrecv would wait --wait s).
    if [ "${frames:-0}" = 0 ]; then kill "$recv_pid" 2>/dev/null; fi
    wait "$recv_pid"
    prc=$?
    echo "  (blkrecv exit $prc)"
    sed -n '2,$s/^/    /p' /tmp/recv.out
    if [ "$prc" = 0 ] && grep -q "^frames: ${frames:-none} stream, 0 not stream, 0 bad\$" /tmp/recv.out &&
        grep -q "^received: $len bytes, not compared" /tmp/recv.out &&
        grep -q '^missing: 0 bytes$' /tmp/recv.out && grep -q '^duplicate: 0 bytes$' /tmp/recv.out &&
        grep -q '^complete: yes$' /tmp/recv.out; then
        result "$recv" PASS "$IGB1 port $port: $(grep -E '^(stream|frames|missing|duplicate|device):' /tmp/recv.out | sed 's/ (no free.*//' | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
    else
        result "$recv" FAIL "exit $prc, want all $len bytes in ${frames:-?} frames once: $(grep -E '^(error|ended|frames|received|missing|duplicate|complete)' /tmp/recv.out | tr '\n' ' ')"
    fi
}
# -------------------------------------------------------- no-IOMMU boot ---

# The same drivers through VFIO's unsafe no-IOMMU mode (no intel-iommu, the
# kernel's vfio with enable_unsafe_noiommu_mode=1): refused without the
# opt-in, with one error line naming it; with VFIO_UNSAFE_NOIOMMU=1 a read
# (the host compares its checksum with the image) and a blkfwd stream
# received by blkrecv (the host compares the wire's bytes with the image),
# DMA at physical addresses.
noiommu_checks() {
    echo "== check noiommu-opt-in"
    run nvme-identify "$NVME0"
    if [ "$rc" != 0 ] && [ "$(grep -c '^error' /tmp/out)" = 1 ] &&
        grep -q "^error: .*noiommu-.*VFIO_UNSAFE_NOIOMMU=1" /tmp/out; then
        result noiommu-opt-in PASS "without VFIO_UNSAFE_NOIOMMU, exit $rc: $(grep '^error' /tmp/out)"
    else
        result noiommu-opt-in FAIL "exit $rc, want one error line naming VFIO_UNSAFE_NOIOMMU=1: $(tr '\n' ' ' </tmp/out)"
    fi
    export VFIO_UNSAFE_NOIOMMU=1
    set -- $NOIOMMU_READ
    echo "== check noiommu-nvme-read"
    echo "  \$ nvme-read $1 --nsid $2 --offset $3 --length $4 | sha256sum"
    timeout 60 nvme-read "$1" --nsid "$2" --offset "$3" --length "$4" 2>/tmp/err >/tmp/data
    rc=$?
    sed 's/^/    /' /tmp/err
    sum=$(sha256sum </tmp/data | cut -d' ' -f1)
    echo "    $(wc -c </tmp/data) bytes, sha256 $sum"
    say "SUM noiommu-nvme-read $sum $rc"
    rm -f /tmp/data
    if [ "$(grep -c '^warning: no IOMMU' /tmp/err)" = 1 ]; then
        result noiommu-warning PASS "$(grep '^warning: no IOMMU' /tmp/err)"
    else
        result noiommu-warning FAIL "want the no-IOMMU warning once on stderr: $(tr '\n' ' ' </tmp/err)"
    fi
    IFS=';'
    for b in $BLKFWD; do
        IFS=' '
        BF_FWD=noiommu-blkfwd BF_RECV=noiommu-blkrecv blkfwd_check $b
        break
    done
    IFS=' '
    dmesg | grep -iE 'noiommu|taint' | sed 's/^/  kernel: /'
    unset VFIO_UNSAFE_NOIOMMU
}

if [ "$MODE" = noiommu ]; then
    noiommu_checks
    MODE=check
    finish
fi

# ----------------------------------------------------- the traced read ---

# The first NVMe command of ours in this boot: nvme-read with --trace. The
# trace goes to the host on the results port, one line after "TRACE " each,
# then "TRACE-END lines exit"; the host compares it with QEMU's own trace of
# the run (check trace-vs-qemu: QEMU's first controller enable with our
# admin queue is this run's, hence first) and the data's checksum with its
# image (read-traced).
set -- $TRACE_READ
echo "== check read-$1, trace-vs-qemu"
echo "  \$ nvme-read $2 --nsid $3 --offset $4 --length $5 --trace /tmp/read.jsonl | sha256sum"
timeout 60 nvme-read "$2" --nsid "$3" --offset "$4" --length "$5" --trace /tmp/read.jsonl \
    2>/tmp/err >/tmp/data
rc=$?
sed 's/^/    /' /tmp/err
sum=$(sha256sum </tmp/data | cut -d' ' -f1)
echo "    $(wc -c </tmp/data) bytes, sha256 $sum"
say "SUM $1 $sum $rc"
rm -f /tmp/data
if [ -f /tmp/read.jsonl ]; then
    sed 's/^/TRACE /' /tmp/read.jsonl >&3
    say "TRACE-END $(wc -l </tmp/read.jsonl) $rc"
    rm -f /tmp/read.jsonl
else
    say "TRACE-END 0 $rc"
fi

# ---------------------------------------------------------- nvme-identify ---

# identify NAME ADDR SERIAL: QEMU's controller, and every namespace of
# $NAMESPACES on ADDR with its size and LBA format in use.
identify() {
    local name="$1" addr="$2" serial="$3" bad="" seen="" ns count want
    echo "== check identify-$name"
    if ! run nvme-identify "$addr"; then
        result "identify-$name" FAIL "nvme-identify $addr exited $rc: $(tail -n 1 /tmp/out)"
        return
    fi
    grep -q "Vendor ID: *1b36" /tmp/out || bad="$bad; vendor is not 1b36 (QEMU)"
    grep -q "Serial Number: *$serial\$" /tmp/out || bad="$bad; serial is not $serial"
    IFS=';'
    for ns in $NAMESPACES; do
        IFS=' '
        set -- $ns
        [ "$1" = "$addr" ] || continue
        seen="$seen ns$2=$3x$4B"
        awk -v ns="$2" -v blocks="$3" -v lba="$4" '
            /^Namespace / { cur = ($2 == ns) }
            cur && /Size:/ && index($0, blocks " blocks of " lba " B") { size = 1 }
            cur && $0 ~ ("LBA Format [0-9]+: +" lba " B data, 0 B metadata \\(in use\\)") { fmt = 1 }
            END { exit !(size && fmt) }' /tmp/out ||
            bad="$bad; namespace $2 is not $3 blocks of $4 B in use"
    done
    IFS=' '
    count=$(grep -c '^Namespace ' /tmp/out)
    want=$(echo "$seen" | wc -w)
    [ "$count" = "$want" ] || bad="$bad; $count namespaces, want $want"
    if [ -z "$bad" ]; then
        result "identify-$name" PASS "QEMU controller '$(grep 'Model Number' /tmp/out | sed 's/.*: *//')',$seen"
    else
        result "identify-$name" FAIL "${bad#; }"
    fi
}
identify nvme0 "$NVME0" "$NVME0_SERIAL"
identify nvme1 "$NVME1" "$NVME1_SERIAL"

# -------------------------------------------------------------- nvme-read ---

# The disks' known regions, read through our driver; the host compares the
# checksums with its images. (Before nvme-perf --verify writes its pattern.)
IFS=';'
for r in $READS; do
    IFS=' '
    set -- $r
    echo "== check read-$1"
    echo "  \$ nvme-read $2 --nsid $3 --offset $4 --length $5 | sha256sum"
    timeout 60 nvme-read "$2" --nsid "$3" --offset "$4" --length "$5" 2>/tmp/err >/tmp/data
    rc=$?
    sed 's/^/    /' /tmp/err
    sum=$(sha256sum </tmp/data | cut -d' ' -f1)
    echo "    $(wc -c </tmp/data) bytes, sha256 $sum"
    say "SUM $1 $sum $rc"
    rm -f /tmp/data
done
IFS=' '

# ------------------------------------------------------ nvme-perf --verify ---

perf() { # NAME ADDR NSID
    echo "== check perf-verify-$1"
    if run nvme-perf "$2" --nsid "$3" --verify --range 4M --bs 4k --qd 16 --time 2; then
        result "perf-verify-$1" PASS "$(grep -E '^(verify|IOPS):' /tmp/out | tr -s ' ' | tr '\n' ' ')"
    else
        result "perf-verify-$1" FAIL "exit $rc: $(grep -E '^(error|verify)' /tmp/out | head -n 2 | tr '\n' ' ')"
    fi
}
perf 512 "$NVME0" 1
perf 4k "$NVME0" 2
perf nvme1 "$NVME1" 1

# ------------------------------------------------------- vfio_guest tests ---

# tests/tests/vfio_guest.rs: several devices in one process (one container,
# one pool for two controllers), a refused second open, close and reopen,
# two functions of one IOMMU group.
echo "== check vfio-tests"
if VFIO_GUEST_NVME="$NVME0,$NVME1" VFIO_GUEST_NIC="$IGB0" VFIO_GUEST_GROUP="$NVME2,$NVME3" \
    run vfio_guest --test-threads=1 --nocapture &&
    ! grep -q '^skipped' /tmp/out; then
    result vfio-tests PASS "$(grep '^test result' /tmp/out)"
else
    result vfio-tests FAIL "exit $rc: $(grep -E '^(test result|---- |thread )' /tmp/out | head -n 3 | tr '\n' ' ')"
fi

# ------------------------------------------------------ igb: pktgen, pcap ---

# pktgen on igb0, our pcap app on igb1 (the ports share a QEMU hub): every
# frame arrives once, in full, with the checksums QEMU's igb offload filled
# in. pcap-check prints a digest of the frames that the host compares with
# its dump of the wire (target/vm/wire.pcap).
echo "== check igb-pktgen, igb-capture"
echo "  \$ pcap $IGB1 /tmp/cap.pcap --count $NIC_COUNT --time 90 --quiet &"
timeout 120 pcap "$IGB1" /tmp/cap.pcap --count "$NIC_COUNT" --time 90 --quiet >/tmp/pcap.out 2>&1 &
pcap_pid=$!
# Until its banner: the port is up and its RX ring armed.
if ! started "$pcap_pid" /tmp/pcap.out pcap; then
    kill "$pcap_pid" 2>/dev/null
    wait "$pcap_pid"
    result igb-pktgen FAIL "not run: pcap on $IGB1 did not start: $(tail -n 1 /tmp/pcap.out)"
    result igb-capture FAIL "pcap on $IGB1 did not start within 30 s: $(tail -n 1 /tmp/pcap.out)"
else
    # --dst-mac broadcast: a real port would ask --dst-ip by ARP, which
    # pcap does not answer; igb1 captures in promiscuous mode.
    if LIMIT=90 run pktgen "$IGB0" --count "$NIC_COUNT" --rate "$NIC_RATE" --size "$NIC_SIZE" \
        --dst-mac broadcast &&
        grep -q "^sent: *$NIC_COUNT frames" /tmp/out && grep -q "^device: *$NIC_COUNT frames" /tmp/out; then
        result igb-pktgen PASS "$IGB0: $(grep -E '^(sent|device):' /tmp/out | sed 's/^[a-z]*: *//' | tr -s ' ' | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
    else
        result igb-pktgen FAIL "exit $rc: $(grep -E '^(error|sent|device)' /tmp/out | tr -s ' ' | tr '\n' ' ')"
    fi
    wait "$pcap_pid"
    prc=$?
    echo "  (pcap exit $prc)"
    sed -n '2,$s/^/    /p' /tmp/pcap.out
    if [ "$prc" != 0 ]; then
        result igb-capture FAIL "pcap on $IGB1 exit $prc: $(tail -n 1 /tmp/pcap.out)"
    elif run pcap-check /tmp/cap.pcap --expect "$NIC_COUNT" --size "$NIC_SIZE"; then
        result igb-capture PASS "$IGB1: $(sed 's/^pcap-check: //' /tmp/out)"
    else
        result igb-capture FAIL "$(tail -n 1 /tmp/out)"
    fi
fi

# ------------------------------------------------- blkfwd: nvme -> igb ---

IFS=';'
for b in $BLKFWD; do
    IFS=' '
    blkfwd_check $b
done
IFS=' '

# --------------------------------------------------------------- non-root ---

# As the user 'lane' (uid 1000, in group vfio) with an app whose DMA memory
# (128 x 128 KiB buffers and the queues: over 16 MiB) is more than the
# default memlock limit (8 MiB): with /dev/vfio/N group-owned by vfio and a
# raised memlock limit it works; without the group, or with the default
# limit, it fails with our one-line error.
G=$(group_of "$NVME1")
PERF_NONROOT="nvme-perf $NVME1 --bs 128k --qd 128 --count 500"
as_lane() { # MEMLOCK_KIB command...
    lim=$1
    shift
    (ulimit -l "$lim" && run su -s /bin/sh lane -c "$*")
}
vfio_node() { # GROUP MODE
    chgrp "$1" "/dev/vfio/$G" && chmod "$2" "/dev/vfio/$G"
    ls -l "/dev/vfio/$G" | sed 's/^/  /'
}

echo "== check nonroot-ok"
vfio_node vfio 0660
as_lane 1048576 "id; echo memlock \$(ulimit -l) KiB; $PERF_NONROOT"
rc=$?
if [ "$rc" = 0 ] && grep -q "^IOPS:" /tmp/out; then
    result nonroot-ok PASS "uid 1000 in group vfio, memlock 1 GiB: $PERF_NONROOT works"
else
    result nonroot-ok FAIL "exit $rc: $(tail -n 1 /tmp/out)"
fi

echo "== check nonroot-no-group"
vfio_node root 0600
as_lane 1048576 "$PERF_NONROOT"
rc=$?
want="no permission on /dev/vfio/$G"
if [ "$rc" != 0 ] && grep -q "^error: $want" /tmp/out; then
    result nonroot-no-group PASS "exit $rc: $(grep '^error' /tmp/out)"
else
    result nonroot-no-group FAIL "exit $rc, want a failure with '$want': $(tail -n 1 /tmp/out)"
fi

echo "== check nonroot-no-memlock"
vfio_node vfio 0660
default=$(ulimit -l)
as_lane "$default" "echo memlock \$(ulimit -l) KiB; $PERF_NONROOT"
rc=$?
if [ "$rc" != 0 ] && grep -q "^error: .*RLIMIT_MEMLOCK" /tmp/out && [ "$(grep -c '^error' /tmp/out)" = 1 ]; then
    result nonroot-no-memlock PASS "default memlock $default KiB: $(grep '^error' /tmp/out)"
else
    result nonroot-no-memlock FAIL "exit $rc, want one error line naming RLIMIT_MEMLOCK: $(tail -n 1 /tmp/out)"
fi
vfio_node root 0600

# ----------------------------------------------------------- IOMMU faults ---

# A device access outside our DMA mappings is stopped by the IOMMU, and the
# kernel logs it. QEMU's nvme model then still completes the command with
# success, so only this log tells (a real drive would report an error).
echo "== check iommu-faults"
if dmesg | grep -E 'DMAR: \[DMA|DMAR: DRHD: handling fault' >/tmp/out; then
    sed 's/^/    /' /tmp/out
    result iommu-faults FAIL "$(grep -c 'DMAR: \[DMA' /tmp/out) fault(s) logged, first: $(grep 'DMAR: \[DMA' /tmp/out | head -n 1 | sed 's/^\[[^]]*\] //')"
else
    result iommu-faults PASS "no DMA fault in the kernel log"
fi

finish
