#!/usr/bin/env bash
# run.sh - the real-VFIO lane: our unmodified drivers inside a QEMU guest with
# a virtual IOMMU (intel-iommu), against QEMU's own nvme and igb models.
#
# Host side: get QEMU (with igb), Debian's kernel and busybox-static; build the
# apps as static binaries; make disk images with known content; pack an
# initramfs with guest-init.sh; boot; parse the guest's RESULT lines. Every
# download and build is cached under target/vm (and cargo's target/), so a
# second run only boots the guest.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PROG="hw-setup/vm/run.sh"
VM="${VM_LANE_DIR:-$ROOT/target/vm}"
TRIPLE=x86_64-unknown-linux-gnu
APPS=(nvme-identify nvme-perf nvme-read pktgen pcap pcap-check blkfwd blkrecv)
# The NIC check: pktgen sends NIC_COUNT frames of NIC_SIZE bytes at NIC_RATE
# frames/s out of igb0 (more than the 512-entry rings hold: both wrap);
# pcap captures them on igb1; pcap-check checks both
# the guest's capture and the host's dump of the wire.
NIC_COUNT=1200 NIC_SIZE=128 NIC_RATE=2000
# The disk-to-wire checks: blkfwd streams a range of nvme0 (0000:00:06.0) out
# of igb0 after pktgen, blkrecv on igb1 receives it, and the host rebuilds it
# from the wire's dump and compares it with the disk image. Each stream its
# own UDP port (pktgen's is 61891). Fields: name nsid start_block length mtu
# dst_port block_size image. The ranges start and end off the read buffer
# (128 KiB) boundaries, past the 4 MiB that nvme-perf --verify writes; ns1
# with 512 B blocks at MTU 1500, ns2 with 4 KiB blocks at MTU 9000 (QEMU's
# igb sends and receives jumbo frames). Guest checks blkfwd-NAME and
# blkrecv-NAME; host check blkfwd-wire (NAME igb) or blkfwd-wire-jumbo
# (igb-jumbo). BLKFWD_RATE (Mbit/s) paces blkfwd for the receiver: QEMU's igb
# drops what arrives while its RX ring is full, and blkrecv polls slowly
# under TCG.
BLKFWD_RATE=8
BLKFWD=(
    "igb 1 12345 2999808 1500 4791 512 ns512"
    "igb-jumbo 2 1234 1052672 9000 4792 4096 ns4k"
)

usage() {
    cat <<EOF
Usage: bash $PROG [--keep | --shell | --run 'CMD'] [--timeout SECS] [--qemu-trace PATTERN]

Boots a QEMU guest (TCG, q35, intel-iommu) with two NVMe controllers (three
namespaces: 512 B and 4 KiB LBAs, disk images with known content) and two
igb ports wired to each other, binds them to vfio-pci inside, and runs our
apps there: nvme-identify, nvme-read (checksums compared here), nvme-perf
--verify, a non-root run, pktgen on one igb port captured by pcap on the
other (checked with pcap-check in the guest, and here against the wire's
dump), and blkfwd streaming disk ranges out of an igb port (received by
blkrecv on the other; here rebuilt from the wire's dump by blkrecv and
compared byte for byte with the disk images). The first nvme-read runs with
--trace and its trace is compared with QEMU's own trace of the same run
(dmatrace compare-qemu). Prints one RESULT line per check and exits non-zero
if any check fails, is missing, or the guest times out.

  --keep          run the checks, then leave a shell in the guest (console on
                  this terminal; 'poweroff -f' or Ctrl-A X ends it)
  --shell         no checks: bind the devices, reserve hugepages, give a shell
  --run 'CMD'     no checks: bind, reserve, run CMD (sh -c) in the guest as
                  root, power off; e.g. --run 'nvme-identify 0000:00:06.0'
  --timeout SECS  give up on the guest after SECS (default 600)
  --qemu-trace PATTERN
                  also trace QEMU's events matching PATTERN (QEMU's -trace
                  enable=PATTERN, e.g. 'pci_nvme_*' or 'igb_*'; repeatable)
                  to target/vm/qemu-trace.log (the no-IOMMU boot's to
                  qemu-trace-noiommu.log); 'qemu-system-x86_64 -trace help'
                  lists the events
  -h, --help      this text

Needs qemu-system-x86_64 with the igb model (QEMU 8 or newer); as root it is
installed when missing (on bookworm from bookworm-backports). Caches in
target/vm (VM_LANE_DIR); 'rm -rf target/vm' starts from scratch.
Outputs: target/vm/console.log (guest console), results.txt (RESULT lines),
wire.pcap (traffic between the igb ports), qemu-trace.log (QEMU's trace: the
pci_nvme events the check trace-vs-qemu reads, and --qemu-trace's),
nvme-read-trace.jsonl (our driver's trace of the traced read).
EOF
}

MODE=check
RUN_CMD=""
TIMEOUT=600
QEMU_TRACE=()
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) MODE=keep ;;
        --shell) MODE=shell ;;
        --run) MODE=run; RUN_CMD="${2:?--run needs a command}"; shift ;;
        --timeout) TIMEOUT="${2:?--timeout needs seconds}"; shift ;;
        --qemu-trace)
            p="${2:?--qemu-trace needs an event name or pattern, e.g. 'pci_nvme_*'}"
            # QEMU's -trace takes key=value pairs separated by commas.
            case "$p" in
                *,*|*=*)
                    echo "$PROG: --qemu-trace '$p': one event name or pattern (no ',' or '='); give --qemu-trace once per pattern" >&2
                    exit 2
                    ;;
            esac
            QEMU_TRACE+=("$p")
            shift
            ;;
        -h|--help) usage; exit 0 ;;
        *) echo "$PROG: unknown argument '$1'; see --help" >&2; exit 2 ;;
    esac
    shift
done

T0=$EPOCHREALTIME
elapsed() { awk -v a="$EPOCHREALTIME" -v b="$T0" 'BEGIN { printf "%.1f", a - b }'; }
step() { echo "== vm: $* (at $(elapsed) s)"; }
die() { echo "$PROG: error: $*" >&2; exit 1; }
mkdir -p "$VM"

# ---------------------------------------------------------------- QEMU -----

qemu_ok() {
    command -v qemu-system-x86_64 >/dev/null &&
        qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'
}

# The mirror of the sources entry whose Suites include $1, from deb822
# *.sources files or one-line sources.list entries. Prints "URI<TAB>KEYRING".
mirror_of() {
    local suite="$1" f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v suite="$suite" '
            function flush() {
                if (uri != "" && found) { print uri "\t" key; done = 1; exit }
                uri = ""; key = ""; found = 0
            }
            /^[ \t]*$/ { flush(); next }
            /^URIs:/ { uri = $2 }
            /^Signed-By:/ { if ($2 ~ /^\//) key = $2 }  # a path, not an inline key
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) found = 1 }
            END { if (!done) flush() }' "$f" | head -n 1 | grep . && return 0
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk -v suite="$suite" '$1 == "deb" {
                i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++
                if ($(i + 2) == suite) { print $(i + 1) "\t"; exit }
            }' "$f" | grep . && return 0
    done
    return 1
}

install_qemu() {
    [ "$(id -u)" = 0 ] || die "qemu-system-x86_64 with the igb model (QEMU 8+) is missing; \
run this once as root to install it (sudo bash $PROG), or install qemu-system-x86 \
from your distribution's backports yourself"
    command -v apt-get >/dev/null || die "no qemu-system-x86_64 with igb and no apt-get to \
install it; install QEMU 8 or newer (package qemu-system-x86)"
    local codename candidate major
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || die "cannot tell the Debian release from /etc/os-release"
    export DEBIAN_FRONTEND=noninteractive
    candidate=$(apt-cache policy qemu-system-x86 2>/dev/null | awk '/Candidate:/{print $2}')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
        apt-get update -q >/dev/null
        candidate=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/{print $2}')
    fi
    major=$(echo "$candidate" | sed -E 's/^[0-9]+://; s/[^0-9].*//')
    if [ -n "$major" ] && [ "$major" -ge 8 ]; then
        step "installing qemu-system-x86 $candidate"
        apt-get install -y -q --no-install-recommends qemu-system-x86 >"$VM/apt.log" 2>&1 ||
            { tail -n 20 "$VM/apt.log"; die "apt-get install qemu-system-x86 failed (log: $VM/apt.log)"; }
    else
        local bp="$codename-backports" m uri key
        if ! grep -rqs -- "$bp" /etc/apt/sources.list /etc/apt/sources.list.d/; then
            m=$(mirror_of "$codename") ||
                die "no apt source for $codename found to take the mirror from; add $bp by hand"
            uri=${m%%$'\t'*}
            key=${m#*$'\t'}
            step "adding $bp (mirror $uri, from the $codename entry) to /etc/apt/sources.list.d/$bp.sources"
            {
                echo "Types: deb"
                echo "URIs: $uri"
                echo "Suites: $bp"
                echo "Components: main"
                if [ -n "$key" ]; then echo "Signed-By: $key"; fi
            } >"/etc/apt/sources.list.d/$bp.sources"
        fi
        apt-get update -q >"$VM/apt.log" 2>&1 ||
            { tail -n 20 "$VM/apt.log"; die "apt-get update failed (log: $VM/apt.log)"; }
        step "installing qemu-system-x86 from $bp (QEMU $candidate in $codename has no igb)"
        apt-get install -y -q --no-install-recommends -t "$bp" qemu-system-x86 >"$VM/apt.log" 2>&1 ||
            { tail -n 20 "$VM/apt.log"; die "apt-get install -t $bp qemu-system-x86 failed (log: $VM/apt.log)"; }
    fi
    qemu_ok || die "the installed QEMU has no igb model: $(qemu-system-x86_64 --version | head -n 1)"
}

step "start"
qemu_ok || install_qemu
echo "qemu: $(qemu-system-x86_64 --version | head -n 1)"

# ------------------------------------------- kernel, modules, busybox -----

# apt-get download into $VM/debs; one apt-get update and a retry if the
# package lists are missing or stale.
download() {
    mkdir -p "$VM/debs"
    local out
    if ! out=$(cd "$VM/debs" && apt-get download "$@" 2>&1); then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -q >/dev/null 2>&1 || true
            out=$(cd "$VM/debs" && apt-get download "$@" 2>&1) ||
                die "apt-get download $* failed: $(echo "$out" | tail -n 3)"
        else
            die "apt-get download $* failed (as root, run apt-get update): $(echo "$out" | tail -n 3)"
        fi
    fi
}

KDIR="$VM/kernel"
if [ -n "${VM_KERNEL_PKG:-}" ] && [ "$(cat "$KDIR/.done" 2>/dev/null)" != "$VM_KERNEL_PKG" ]; then
    rm -f "$KDIR/.done"
fi
if [ ! -e "$KDIR/.done" ]; then
    command -v apt-get >/dev/null || die "the guest's kernel and busybox come from Debian's packages: need apt-get"
    kpkg="${VM_KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/{print $2; exit}')}"
    if [ -z "$kpkg" ] && [ "$(id -u)" = 0 ]; then
        apt-get update -q >/dev/null 2>&1 || true
        kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    fi
    [ -n "$kpkg" ] || die "cannot find the kernel package linux-image-amd64 depends on (apt-get update?)"
    step "downloading $kpkg and busybox-static"
    rm -rf "$KDIR" "$VM/debs"
    download "$kpkg" busybox-static
    mkdir -p "$KDIR"
    # Only the kernel image and the modules the guest loads (and what they
    # may depend on), not all 400 MB of modules.
    dpkg-deb --fsys-tarfile "$VM/debs/${kpkg}"_*.deb |
        tar -x -C "$KDIR" --wildcards './boot/vmlinuz-*' '*/kernel/drivers/vfio/*' \
            '*/kernel/virt/lib/*' '*/kernel/drivers/iommu/*' 2>/dev/null || true
    dpkg-deb --fsys-tarfile "$VM/debs/"busybox-static_*.deb |
        tar -x -C "$KDIR" ./bin/busybox
    ls "$KDIR"/boot/vmlinuz-* >/dev/null 2>&1 || die "no kernel image in $kpkg"
    echo "$kpkg" >"$KDIR/.done"
fi
VMLINUZ=$(find "$KDIR/boot" -name 'vmlinuz-*' | head -n 1)
BUSYBOX="$KDIR/bin/busybox"
echo "kernel: $(cat "$KDIR/.done") ($(basename "$VMLINUZ")), busybox: $("$BUSYBOX" | head -n 1 | awk '{print $2}')"

# The module file of module $1 ('-' and '_' are the same in module names).
module_file() {
    local want="${1//-/_}" f n
    while IFS= read -r f; do
        n=$(basename "$f"); n="${n%%.ko*}"
        [ "${n//-/_}" = "$want" ] && { echo "$f"; return 0; }
    done < <(find "$KDIR" -name '*.ko*')
    return 1
}

# Modules in load order: the closure of vfio-pci and vfio_iommu_type1 (which
# vfio loads on demand, so it is no dependency) by their depends= fields;
# those not found as files are built in.
ORDER=()
add_module() {
    local m="${1//-/_}" f deps d x
    for x in "${ORDER[@]}"; do [ "$x" = "$m" ] && return 0; done
    f=$(module_file "$m") || return 0
    deps=$(ko_text "$f" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n 1)
    for d in ${deps//,/ }; do add_module "$d"; done
    ORDER+=("$m")
}
ko_text() {
    case "$1" in
        *.xz) xz -dc "$1" ;;
        *.zst) zstd -qdc "$1" ;;
        *.gz) gzip -dc "$1" ;;
        *) cat "$1" ;;
    esac
}
for m in vfio vfio_iommu_type1 vfio_pci; do add_module "$m"; done

# ------------------------------------------- vfio with no-IOMMU mode -----

# The second boot (no IOMMU) needs vfio's unsafe no-IOMMU mode, which
# Debian's kernels leave out (CONFIG_VFIO_NOIOMMU is not set). Unless the
# kernel's vfio has it, vfio.ko is rebuilt with it from the kernel's own
# source package against its headers (installed as root when missing);
# the other modules stay Debian's. Cached in target/vm/noiommu.
NOIOMMU_KO="$VM/noiommu/vfio.ko"
noiommu_module() {
    local kpkg kver series version src build
    kpkg=$(cat "$KDIR/.done")
    kver=${kpkg#linux-image-}
    [ "$(cat "$VM/noiommu/.done" 2>/dev/null)" = "$kpkg" ] && [ -e "$NOIOMMU_KO" ] && return 0
    rm -rf "$VM/noiommu"
    mkdir -p "$VM/noiommu"
    if ko_text "$(module_file vfio)" | tr '\0' '\n' | grep -q '^parmtype=enable_unsafe_noiommu_mode:'; then
        ko_text "$(module_file vfio)" >"$NOIOMMU_KO"
        echo "$kpkg" >"$VM/noiommu/.done"
        return 0
    fi
    series=$(echo "$kver" | cut -d. -f1,2)
    version=$(dpkg-deb -f "$VM/debs/${kpkg}"_*.deb Version 2>/dev/null) ||
        die "no $kpkg package in $VM/debs to take the version from; rm -rf $KDIR and run again"
    if [ ! -e "/usr/src/linux-headers-$kver/Makefile" ]; then
        [ "$(id -u)" = 0 ] || die "the no-IOMMU boot needs vfio.ko built with no-IOMMU mode, so \
linux-headers-$kver; install it (apt-get install linux-headers-$kver) or run this as root"
        step "installing linux-headers-$kver (to build vfio.ko with no-IOMMU mode)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "linux-headers-$kver=$version" >"$VM/apt.log" 2>&1 ||
            { tail -n 20 "$VM/apt.log"; die "apt-get install linux-headers-$kver failed (log: $VM/apt.log)"; }
    fi
    step "building vfio.ko of $kver with CONFIG_VFIO_NOIOMMU from linux-source-$series $version"
    ls "$VM/debs/linux-source-${series}_${version}"_all.deb >/dev/null 2>&1 ||
        download "linux-source-$series=$version"
    src="$VM/noiommu/src"
    build="$VM/noiommu/build"
    mkdir -p "$src" "$build"
    dpkg-deb --fsys-tarfile "$VM/debs/linux-source-${series}_${version}"_all.deb |
        tar -xO "./usr/src/linux-source-$series.tar.xz" | xz -dc |
        tar -x -C "$src" --wildcards "linux-source-$series/drivers/vfio/*"
    cp "$src/linux-source-$series/drivers/vfio/"*.[ch] "$build/"
    # vfio.ko's own objects, as the kernel's Makefile lists them.
    {
        echo "obj-m := vfio.o"
        awk '/^vfio-/ { keep = 1 } keep { print } keep && !/\\$/ { keep = 0 }' \
            "$src/linux-source-$series/drivers/vfio/Makefile"
        echo "ccflags-y += -DCONFIG_VFIO_NOIOMMU=1"
    } >"$build/Makefile"
    make -s -C "/usr/src/linux-headers-$kver" M="$build" CONFIG_VFIO_NOIOMMU=y modules \
        >"$VM/noiommu/build.log" 2>&1 ||
        { tail -n 20 "$VM/noiommu/build.log"; die "building vfio.ko with no-IOMMU mode failed (log: $VM/noiommu/build.log)"; }
    strip --strip-debug -o "$NOIOMMU_KO" "$build/vfio.ko"
    rm -rf "$src" "$build"
    echo "$kpkg" >"$VM/noiommu/.done"
}
noiommu_module

# --------------------------------------------------------- disk images -----

# name  size  seed: random bytes from a fixed seed, so every block differs.
DISKS=("ns512 64M 1" "ns4k 32M 2" "c2ns4k 32M 3")
DDIR="$VM/disks"
mkdir -p "$DDIR"
for d in "${DISKS[@]}"; do
    read -r name size seed <<<"$d"
    if [ ! -e "$DDIR/$name.img" ]; then
        step "making disk image $name.img ($size, seed $seed)"
        if command -v python3 >/dev/null; then
            python3 - "$DDIR/$name.img.tmp" "$size" "$seed" <<'EOF'
import random, sys
path, size, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = int(size[:-1]) << {"K": 10, "M": 20, "G": 30}[size[-1]]
rng = random.Random(seed)
with open(path, "wb") as f:
    for _ in range(n >> 20):
        f.write(rng.randbytes(1 << 20))
EOF
        else
            # Not reproducible elsewhere, but the host checks against this file.
            head -c "$size" /dev/urandom >"$DDIR/$name.img.tmp"
        fi
        mv "$DDIR/$name.img.tmp" "$DDIR/$name.img"
    fi
done

# The guest's devices: fixed PCI slots on the root bus.
NVME0=0000:00:06.0 # two namespaces: 1 = ns512 (512 B LBAs), 2 = ns4k (4 KiB LBAs)
NVME1=0000:00:07.0 # one namespace: c2ns4k (4 KiB LBAs)
NVME2=0000:01:01.0 # NVME2 and NVME3: behind a PCI bridge (00:08.0), so in one
NVME3=0000:01:02.0 # IOMMU group; null-co drives (16 MiB of zeros)
IGB0=0000:00:02.0 # igb has 8 SR-IOV VFs at devfn + 0x80, stride 2: slots 0x12-0x13
IGB1=0000:00:04.0 # its VFs: slots 0x14-0x15

# Known regions read through our driver: name dev nsid offset length image.
# Unaligned starts and ends, a region larger than MDTS (QEMU: 512 KiB), the
# first and the last block.
READS=(
    "n0ns1-head $NVME0 1 0 1048576 ns512"
    "n0ns1-odd $NVME0 1 1234567 777777 ns512"
    "n0ns1-tail $NVME0 1 $((64 * 1048576 - 4096)) 4096 ns512"
    "n0ns2-big $NVME0 2 $((3 * 1048576 + 100)) $((2 * 1048576 + 12345)) ns4k"
    "n0ns2-tail $NVME0 2 $((32 * 1048576 - 8192)) 8192 ns4k"
    "n1ns1-mid $NVME1 1 $((16 * 1048576 + 4095)) 1000000 c2ns4k"
)
# The traced read: the first NVMe command of ours in the boot (so the
# first controller enable with our admin queue in QEMU's trace is its
# own), with --trace; its trace comes back to the host, which compares it
# with QEMU's pci_nvme events of the same run (check trace-vs-qemu) and the
# data with the image (check read-traced). 300 KiB at an unaligned offset
# of namespace 1: three read commands (nvme-read's 128 KiB pieces), each
# through a PRP list, besides the admin commands of the controller's setup
# and the I/O queue pair's creation and deletion. Fields as READS.
TRACE_READ="traced $NVME0 1 4160 307200 ns512"
# The QEMU events dmatrace compare-qemu reads (apps/src/trace/qemu.rs,
# EVENTS), traced in the first boot's check mode.
QEMU_TRACE_CHECK=(pci_nvme_mmio_asqaddr pci_nvme_mmio_asqaddr_hi pci_nvme_mmio_start_success
    pci_nvme_admin_cmd pci_nvme_io_cmd pci_nvme_map_prp pci_nvme_create_cq pci_nvme_create_sq
    pci_nvme_enqueue_req_completion)
# The no-IOMMU boot reads one region (larger than MDTS, unaligned): name
# dev nsid offset length image, the name being its check's.
NOIOMMU_READ="noiommu-nvme-read $NVME0 2 $((3 * 1048576 + 100)) $((2 * 1048576 + 12345)) ns4k"

# ------------------------------------------------------------- the apps -----

step "building ${APPS[*]} (and dmatrace for here) and the vfio_guest tests as static binaries (--target $TRIPLE)"
# Naming the target keeps RUSTFLAGS away from build scripts and proc-macros.
export RUSTFLAGS='-C target-feature=+crt-static'
BINS=(--bin dmatrace)
for a in "${APPS[@]}"; do BINS+=(--bin "$a"); done
(cd "$ROOT" && cargo build --release --quiet --target "$TRIPLE" -p apps "${BINS[@]}")
BIN="$ROOT/target/$TRIPLE/release"
TESTBIN=$(cd "$ROOT" && cargo test --release --no-run --quiet --target "$TRIPLE" -p e2e-tests \
    --test vfio_guest --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*vfio_guest[^"]*\)".*/\1/p' | tail -n 1) || true
[ -x "$TESTBIN" ] || die "building the vfio_guest test binary failed; see \
RUSTFLAGS='$RUSTFLAGS' cargo test --release --no-run --target $TRIPLE -p e2e-tests --test vfio_guest"
unset RUSTFLAGS

# ------------------------------------------------------------ initramfs -----

step "packing the initramfs"
IR="$VM/initramfs"
rm -rf "$IR"
mkdir -p "$IR"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,lib/modules}
cp "$BUSYBOX" "$IR/bin/busybox"
ln -s busybox "$IR/bin/sh"
for a in "${APPS[@]}"; do
    strip -o "$IR/bin/$a" "$BIN/$a" 2>/dev/null || cp "$BIN/$a" "$IR/bin/$a"
done
strip -o "$IR/bin/vfio_guest" "$TESTBIN" 2>/dev/null || cp "$TESTBIN" "$IR/bin/vfio_guest"
: >"$IR/lib/modules/order"
for m in "${ORDER[@]}"; do
    ko_text "$(module_file "$m")" >"$IR/lib/modules/$m.ko"
    echo "$m" >>"$IR/lib/modules/order"
done
mkdir -p "$IR/lib/modules/noiommu"
cp "$NOIOMMU_KO" "$IR/lib/modules/noiommu/vfio.ko"
cp "$HERE/guest-init.sh" "$IR/init"
chmod 755 "$IR/init" "$IR"/bin/*
cat >"$IR/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
lane:x:1000:1000:vm lane user:/tmp:/bin/sh
EOF
cat >"$IR/etc/group" <<'EOF'
root:x:0:
lane:x:1000:
vfio:x:1001:lane
EOF
echo /bin/sh >"$IR/etc/shells"
printf '%s\n' "$RUN_CMD" >"$IR/lane-cmd"
{
    echo "NVME0=$NVME0 NVME1=$NVME1 NVME2=$NVME2 NVME3=$NVME3 IGB0=$IGB0 IGB1=$IGB1"
    echo "NVME0_SERIAL=LANE-NVME-0 NVME1_SERIAL=LANE-NVME-1"
    # Expected namespaces: "dev nsid blocks lba_size".
    echo "NAMESPACES='$NVME0 1 $((64 * 2048)) 512;$NVME0 2 $((32 * 256)) 4096;$NVME1 1 $((32 * 256)) 4096'"
    printf "READS='"
    printf '%s;' "${READS[@]% *}"
    echo "'"
    # The no-IOMMU boot's read: "dev nsid offset length" of NOIOMMU_READ.
    r=${NOIOMMU_READ#* }
    echo "NOIOMMU_READ='${r% *}'"
    # The traced read: "name dev nsid offset length" of TRACE_READ.
    echo "TRACE_READ='${TRACE_READ% *}'"
    echo "HUGEPAGES=128"
    echo "NIC_COUNT=$NIC_COUNT NIC_SIZE=$NIC_SIZE NIC_RATE=$NIC_RATE"
    echo "BLKFWD_RATE=$BLKFWD_RATE"
    printf "BLKFWD='"
    printf '%s;' "${BLKFWD[@]% *}"
    echo "'"
} >"$IR/lane.conf"
(cd "$IR" && find . | sort | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) |
    gzip -1 >"$VM/initramfs.cpio.gz"
echo "initramfs: $(du -k "$VM/initramfs.cpio.gz" | cut -f1) KiB; modules: ${ORDER[*]}"

# ------------------------------------------------------------------ boot -----

# shellcheck disable=SC2054 # the commas are QEMU's
QEMU_MACHINE=(qemu-system-x86_64
    -accel tcg -machine q35,kernel-irqchip=split -cpu max -smp 2 -m 1024)
QEMU_BASE=(-nodefaults -display none -no-reboot
    -kernel "$VMLINUZ" -initrd "$VM/initramfs.cpio.gz"
    -drive "if=none,id=ns512,file=$DDIR/ns512.img,format=raw,snapshot=on"
    -drive "if=none,id=ns4k,file=$DDIR/ns4k.img,format=raw,snapshot=on"
    -drive "if=none,id=c2ns4k,file=$DDIR/c2ns4k.img,format=raw,snapshot=on"
    -device "nvme,id=nvme0,serial=LANE-NVME-0,addr=${NVME0:8:2}.0"
    -device nvme-ns,bus=nvme0,drive=ns512,nsid=1,logical_block_size=512,physical_block_size=512
    -device nvme-ns,bus=nvme0,drive=ns4k,nsid=2,logical_block_size=4096,physical_block_size=4096
    -device "nvme,id=nvme1,serial=LANE-NVME-1,addr=${NVME1:8:2}.0,drive=c2ns4k,logical_block_size=4096,physical_block_size=4096"
    -device pci-bridge,id=br0,chassis_nr=1,shpc=off,addr=08.0
    -blockdev driver=null-co,node-name=null2,size=16777216,read-zeroes=on
    -blockdev driver=null-co,node-name=null3,size=16777216,read-zeroes=on
    -device "nvme,serial=LANE-NVME-2,bus=br0,addr=${NVME2:8:2}.0,drive=null2"
    -device "nvme,serial=LANE-NVME-3,bus=br0,addr=${NVME3:8:2}.0,drive=null3"
    -netdev hubport,id=port0,hubid=0
    -netdev hubport,id=port1,hubid=0
    -device "igb,netdev=port0,mac=52:54:00:00:00:01,addr=${IGB0:8:2}.0"
    -device "igb,netdev=port1,mac=52:54:00:00:00:02,addr=${IGB1:8:2}.0"
)
# intel-iommu before the PCI devices, as QEMU wants it.
QEMU=("${QEMU_MACHINE[@]}" -device intel-iommu,intremap=on,caching-mode=on,aw-bits=39
    "${QEMU_BASE[@]}" -object "filter-dump,id=dump0,netdev=port0,file=$VM/wire.pcap")
APPEND="console=ttyS0 intel_iommu=on quiet panic=-1 lane.mode=$MODE"
# The second boot: no IOMMU device, no intel_iommu, the no-IOMMU checks.
QEMU_NOIOMMU=("${QEMU_MACHINE[@]}" "${QEMU_BASE[@]}"
    -object "filter-dump,id=dump0,netdev=port0,file=$VM/wire-noiommu.pcap")
APPEND_NOIOMMU="console=ttyS0 quiet panic=-1 lane.mode=noiommu"
# QEMU's own trace (its log backend, Debian's): --qemu-trace's patterns in
# both boots, and in the first boot's checks the events trace-vs-qemu
# compares with our driver's trace.
trace_args() { # FILE PATTERN...
    local f="$1" p
    shift
    for p in "$@"; do printf '%s\0' -trace "enable=$p,file=$f"; done
}
TRACE_PATTERNS=("${QEMU_TRACE[@]}")
[ "$MODE" = check ] && TRACE_PATTERNS+=("${QEMU_TRACE_CHECK[@]}")
mapfile -d '' -t a < <(trace_args "$VM/qemu-trace.log" "${TRACE_PATTERNS[@]}")
QEMU+=("${a[@]}")
mapfile -d '' -t a < <(trace_args "$VM/qemu-trace-noiommu.log" "${QEMU_TRACE[@]}")
QEMU_NOIOMMU+=("${a[@]}")
echo "qemu command: ${QEMU[*]} -serial stdio -serial file:$VM/results.txt -append '$APPEND'"

rm -f "$VM/results.txt" "$VM/console.log" "$VM/wire.pcap" "$VM/qemu-trace.log" "$VM/qemu-trace-noiommu.log"
if [ "$MODE" = keep ] || [ "$MODE" = shell ]; then
    step "booting the guest ($MODE mode: Ctrl-A X quits QEMU, 'poweroff -f' in the guest too)"
    exec "${QEMU[@]}" -serial mon:stdio -serial "file:$VM/results.txt" -append "$APPEND"
fi

[ "$MODE" = run ] && TIMEOUT=$((TIMEOUT > 600 ? TIMEOUT : 600))
boot_guest() {
    rm -f "$VM/results.txt" "$VM/console.log" "$VM/wire.pcap" "$VM/qemu-trace.log"
    status=0
    timeout --foreground -k 5 "$TIMEOUT" "${QEMU[@]}" -serial stdio -serial "file:$VM/results.txt" \
        -append "$APPEND" </dev/null 2>"$VM/qemu.log" |
        tr -d '\r' | tee "$VM/console.log" | sed -u 's/^/  guest| /' || status=$?
}
step "booting the guest (timeout ${TIMEOUT} s; console below, also in target/vm/console.log)"
boot_guest
# Under TCG the guest kernel itself sometimes stalls (its RCU watchdog
# reports a CPU whose timer never fires) and then nothing in it runs again:
# a fault of the emulation, not of the code under test, which runs in user
# space. Boot once more in that case only; a guest that hangs without the
# kernel saying so is still a failure of the first boot.
if [ "$MODE" = check ] && [ "$status" = 124 ] &&
    grep -q 'rcu: INFO: rcu_preempt detected stalls' "$VM/console.log"; then
    cp "$VM/console.log" "$VM/console.stalled.log"
    step "the guest kernel stalled (RCU stall in target/vm/console.stalled.log), not a test: booting it once more"
    boot_guest
fi
# (The hub of the two igb ports has no host side, as meant: QEMU warns.)
grep -v 'hub 0 is not connected to host network' "$VM/qemu.log" | sed 's/^/  qemu| /' || true
step "guest finished"
if [ "$MODE" = run ]; then
    exit "$status"
fi

# The no-IOMMU boot: the same guest without intel-iommu, vfio in its
# unsafe no-IOMMU mode; results in results-noiommu.txt, the wire in
# wire-noiommu.pcap. (Once more on the kernel's RCU stall, as above.)
boot_noiommu() {
    rm -f "$VM/results-noiommu.txt" "$VM/console-noiommu.log" "$VM/wire-noiommu.pcap" \
        "$VM/qemu-trace-noiommu.log"
    status_noiommu=0
    timeout --foreground -k 5 "$TIMEOUT" "${QEMU_NOIOMMU[@]}" -serial stdio \
        -serial "file:$VM/results-noiommu.txt" -append "$APPEND_NOIOMMU" </dev/null \
        2>"$VM/qemu-noiommu.log" |
        tr -d '\r' | tee "$VM/console-noiommu.log" | sed -u 's/^/  guest| /' || status_noiommu=$?
}
step "booting the guest without IOMMU (vfio no-IOMMU mode; console also in target/vm/console-noiommu.log)"
boot_noiommu
if [ "$status_noiommu" = 124 ] && grep -q 'rcu: INFO: rcu_preempt detected stalls' "$VM/console-noiommu.log"; then
    cp "$VM/console-noiommu.log" "$VM/console-noiommu.stalled.log"
    step "the guest kernel stalled (RCU stall in target/vm/console-noiommu.stalled.log), not a test: booting it once more"
    boot_noiommu
fi
grep -v 'hub 0 is not connected to host network' "$VM/qemu-noiommu.log" | sed 's/^/  qemu| /' || true
step "guest without IOMMU finished"

# --------------------------------------------------------------- verdict -----

RES="$VM/results.txt"
RES_NOIOMMU="$VM/results-noiommu.txt"
for f in "$RES" "$RES_NOIOMMU"; do
    touch "$f"
    tr -d '\r' <"$f" >"$f.tmp" && mv "$f.tmp" "$f"
done
pass=0 fail=0
declare -A SEEN=()
verdict() { # name PASS|FAIL detail
    SEEN[$1]=1
    printf 'RESULT %-24s %s %s\n' "$1" "$2" "${3:-}"
    if [ "$2" = PASS ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
}

echo "== vm: results"
while read -r kind name rest; do
    case "$kind" in
        RESULT)
            read -r v detail <<<"$rest"
            verdict "$name" "$v" "$detail"
            ;;
        SUM) # SUM name sha256 exit
            read -r sha code <<<"$rest"
            for r in "${READS[@]}" "$TRACE_READ" "$NOIOMMU_READ"; do
                read -r rname _dev _ns off len img <<<"$r"
                [ "$rname" = "$name" ] || continue
                check="read-$name"
                [ "$rname" = "${NOIOMMU_READ%% *}" ] && check=$name
                want=$(head -c "$((off + len))" "$DDIR/$img.img" | tail -c "$len" | sha256sum | cut -d' ' -f1)
                if [ "$code" = 0 ] && [ "$sha" = "$want" ]; then
                    verdict "$check" PASS "$len bytes at $off of $img.img: sha256 ${sha:0:16}... matches"
                else
                    verdict "$check" FAIL "$len bytes at $off of $img.img: exit $code, sha256 $sha, want $want"
                fi
            done
            ;;
    esac
done < <(cat "$RES" "$RES_NOIOMMU")

# The wire between the igb ports as QEMU's filter-dump saw it (both
# directions of igb0's hub port): pktgen's frames, each once, checksums
# filled in by QEMU's igb offload, and the same bytes (digest) as the guest's
# capture on igb1.
if [ "$(head -c 4 "$VM/wire.pcap" 2>/dev/null | od -An -tx1 | tr -d ' \n')" != d4c3b2a1 ]; then
    verdict wire-pcap FAIL "$VM/wire.pcap missing or not a pcap file"
elif ! out=$("$BIN/pcap-check" "$VM/wire.pcap" --expect "$NIC_COUNT" --size "$NIC_SIZE" --allow-other 2>&1); then
    verdict wire-pcap FAIL "$out"
else
    host_digest=$(echo "$out" | sed -n 's/.*digest \([0-9a-f]*\).*/\1/p')
    guest_digest=$(sed -n 's/^RESULT igb-capture PASS .*digest \([0-9a-f]*\).*/\1/p' "$RES" | head -n 1)
    if [ -z "$guest_digest" ]; then
        verdict wire-pcap FAIL "no digest from the guest's igb-capture to compare with; wire: ${out#pcap-check: }"
    elif [ "$host_digest" != "$guest_digest" ]; then
        verdict wire-pcap FAIL "wire digest $host_digest, guest capture $guest_digest: the frames differ; wire: ${out#pcap-check: }"
    else
        verdict wire-pcap PASS "${out#pcap-check: }; same digest as the guest's capture"
    fi
fi

# blkfwd's streams as they went over the wire: blkrecv rebuilds each from
# the dump (its UDP port picks it out of the rest) and compares every byte
# with the disk image at the namespace offset; all of the range, each byte
# once and equal, in as many frames as blkfwd reported sending.
has() { grep -qxF -- "$1" <<<"$out" || bad="$bad; no '$1'"; } # a line of $out, or noted in $bad
# wire_check CHECK PCAP FWD_CHECK NAME NSID START LEN MTU PORT LBA IMG: the
# stream that the guest's check FWD_CHECK sent, rebuilt from PCAP.
wire_check() {
    local check="$1" pcap="$2" fwd="$3" name nsid start len mtu port lba img from to sent rc
    read -r name nsid start len mtu port lba img <<<"${*:4}"
    from=$((start * lba)) to=$((start * lba + len))
    sent=$(sed -n "s/^RESULT $fwd PASS .* frames=\([0-9]*\) .*/\1/p" "$RES" "$RES_NOIOMMU" | head -n 1)
    if [ -z "$sent" ]; then
        verdict "$check" FAIL "$fwd did not pass in the guest: no stream to check"
        return
    fi
    rc=0
    out=$("$BIN/blkrecv" "pcap:$pcap" --dst-port "$port" --expect "file:$DDIR/$img.img" \
        --quiet 2>&1) || rc=$?
    bad=""
    [ "$rc" = 0 ] || bad="$bad; exit $rc"
    grep -qx "stream: range \[$from, $to) (.*), 1 lap (1 complete), 1 stream" <<<"$out" ||
        bad="$bad; not one complete lap of [$from, $to)"
    has "frames: $sent stream, 0 not stream, 0 bad"
    has "verified: $len bytes, 0 mismatched"
    has "missing: 0 bytes"
    has "duplicate: 0 bytes"
    has "complete: yes"
    if [ -z "$bad" ]; then
        verdict "$check" PASS "$(basename "$pcap") port $port: bytes [$from, $to) of $img.img (nsid $nsid, MTU $mtu) in $sent frames, as blkfwd sent; $(grep -E '^(verified|missing|duplicate|dst-port):' <<<"$out" | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
    else
        verdict "$check" FAIL "${bad#; }: $(grep -E '^(error|stream|frames|verified|missing|duplicate|complete)' <<<"$out" | tr '\n' ' ')"
    fi
}
for b in "${BLKFWD[@]}"; do
    name=${b%% *}
    wire_check "blkfwd-wire${name#igb}" "$VM/wire.pcap" "blkfwd-$name" $b
done
# The no-IOMMU boot's stream (the first of BLKFWD).
wire_check noiommu-blkfwd-wire "$VM/wire-noiommu.pcap" noiommu-blkfwd ${BLKFWD[0]}

# Our driver's trace of the traced read (its lines came back on the results
# port, each after "TRACE ") against QEMU's pci_nvme events of the same run:
# every command's CID, opcode, NSID and PRP1/PRP2 (queue address for the
# queue creations), every completion's CID, DW0, DW1 and status.
sed -n 's/^TRACE //p' "$RES" >"$VM/nvme-read-trace.jsonl"
trace_end=$(sed -n 's/^TRACE-END //p' "$RES" | head -n 1)
if [ -z "$trace_end" ]; then
    verdict trace-vs-qemu FAIL "the guest sent no trace of the traced read (no TRACE-END line)"
elif [ "$(wc -l <"$VM/nvme-read-trace.jsonl")" != "${trace_end%% *}" ]; then
    verdict trace-vs-qemu FAIL "the guest sent ${trace_end%% *} trace lines, $(wc -l <"$VM/nvme-read-trace.jsonl") arrived"
elif ! out=$("$BIN/dmatrace" compare-qemu "$VM/nvme-read-trace.jsonl" "$VM/qemu-trace.log" 2>&1); then
    echo "$out" | sed 's/^/    /'
    verdict trace-vs-qemu FAIL "$(grep -E '^(error|[0-9]+ disagreement)' <<<"$out" | tr '\n' ' ')(target/vm/nvme-read-trace.jsonl vs target/vm/qemu-trace.log)"
else
    read -r _name dev nsid off len _img <<<"$TRACE_READ"
    verdict trace-vs-qemu PASS "nvme-read $dev --nsid $nsid --offset $off --length $len --trace: ${out#agree: }"
fi

# QEMU's own record of IOMMU translation failures (devices reaching outside
# the guest's mappings), in case the guest missed one.
if grep -q 'translation failure\|vtd_.*error' "$VM/qemu.log" 2>/dev/null; then
    verdict iommu-faults-qemu FAIL "$(grep -m 1 'translation failure\|vtd_.*error' "$VM/qemu.log")"
else
    verdict iommu-faults-qemu PASS "no translation failure in QEMU's log"
fi

# Every check must have reported.
WANT=(boot modules iommu bind-nvme0 bind-nvme1 bind-nvme2 bind-nvme3 bind-igb0 bind-igb1 hugepages
    identify-nvme0 identify-nvme1
    perf-verify-512 perf-verify-4k perf-verify-nvme1
    vfio-tests igb-pktgen igb-capture nonroot-ok nonroot-no-group nonroot-no-memlock iommu-faults)
for r in "${READS[@]}" "$TRACE_READ"; do WANT+=("read-${r%% *}"); done
WANT+=(trace-vs-qemu)
for b in "${BLKFWD[@]}"; do
    b="${b%% *}"
    WANT+=("blkfwd-$b" "blkrecv-$b" "blkfwd-wire${b#igb}")
done
# The no-IOMMU boot's checks.
WANT+=(noiommu-boot noiommu-modules noiommu-no-iommu noiommu-bind-nvme0 noiommu-bind-igb0 noiommu-bind-igb1
    noiommu-hugepages noiommu-opt-in noiommu-nvme-read noiommu-warning noiommu-blkfwd
    noiommu-blkrecv noiommu-blkfwd-wire)
for w in "${WANT[@]}"; do
    [ -n "${SEEN[$w]:-}" ] || verdict "$w" FAIL "no result from the guest"
done
finished() { # CHECK RESULTS STATUS
    if ! grep -q '^LANE DONE' "$2"; then
        if [ "$3" = 124 ] || [ "$3" = 137 ]; then
            verdict "$1" FAIL "the guest did not finish within $TIMEOUT s (--timeout SECS)"
        else
            verdict "$1" FAIL "the guest stopped before 'LANE DONE' (QEMU exit $3)"
        fi
    fi
}
finished guest-finished "$RES" "$status"
finished noiommu-guest-finished "$RES_NOIOMMU" "$status_noiommu"

step "done"
echo "vm-lane: $pass passed, $fail failed"
[ "$fail" = 0 ]
