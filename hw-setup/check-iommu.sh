#!/usr/bin/env bash
# check-iommu.sh - is this host ready for user-space drivers through VFIO?
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
. "$HERE/common.sh"

usage() {
    cat <<EOF
Usage: $PROG [--need-mib MIB] [--noiommu]

Checks, one line each, what binding devices to vfio-pci and doing DMA from
user space needs, and prints a fix for every MISSING item:
  cpu-virt          vmx/svm CPU flags (informational: VFIO needs the IOMMU,
                    not these)
  iommu             an IOMMU is registered (/sys/class/iommu not empty)
  iommu-groups      devices are in IOMMU groups (/sys/kernel/iommu_groups)
  kernel-cmdline    intel_iommu=on / amd_iommu not off
  module ...        vfio, vfio_iommu_type1, vfio_pci loaded or built in
  /dev/vfio/vfio    the VFIO container device exists
  hugepages         free hugepages are reserved
  memlock           RLIMIT_MEMLOCK of this shell (ulimit -l) covers the DMA
                    memory: --need-mib MIB, default the reserved hugepage
                    memory (1024 MiB if none is reserved)

--noiommu checks VFIO's unsafe no-IOMMU mode instead (a host without a
usable IOMMU; the device can DMA anywhere in memory, see README.md): the
IOMMU lines become INFO, vfio_iommu_type1 is not needed, and these are
checked:
  vfio-noiommu      vfio's enable_unsafe_noiommu_mode is Y
  cap-sys-rawio     this shell has CAP_SYS_RAWIO (for /dev/vfio/noiommu-N
                    and the physical addresses in /proc/self/pagemap)
The apps use the mode only with VFIO_UNSAFE_NOIOMMU=1 in their environment.

Environment: SYSFS_ROOT (/sys), PROCFS_ROOT (/proc), DEVFS_ROOT (/dev) to
check another tree.

Exit status: 0 if everything needed is there, 1 if something is MISSING,
2 on usage errors.
EOF
}

NEED_MIB=""
NOIOMMU=0
while (( $# )); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --noiommu) NOIOMMU=1 ;;
        --need-mib)
            (( $# >= 2 )) || { echo "$PROG: error: --need-mib needs a number of MiB" >&2; exit 2; }
            NEED_MIB="$2"; shift ;;
        --need-mib=*) NEED_MIB="${1#--need-mib=}" ;;
        *) echo "$PROG: error: unexpected argument '$1'; run '$PROG --help'" >&2; exit 2 ;;
    esac
    shift
done
if [[ -n "$NEED_MIB" && ! "$NEED_MIB" =~ ^[0-9]+$ ]]; then
    echo "$PROG: error: --need-mib '$NEED_MIB' is not a whole number of MiB" >&2
    exit 2
fi

MISSING=0
# An IOMMU line: MISSING, or INFO with --noiommu (not needed there).
iommu_missing() {
    if (( NOIOMMU )); then
        info "$1" "$2 (not needed with --noiommu)"
    else
        missing "$@"
    fi
}
ok() { printf '%-8s %-24s %s\n' OK "$1" "$2"; }
info() { printf '%-8s %-24s %s\n' INFO "$1" "$2"; }
missing() {
    printf '%-8s %-24s %s\n' MISSING "$1" "$2"
    printf '%-8s %-24s fix: %s\n' "" "" "$3"
    MISSING=$((MISSING + 1))
}

names_in() {
    local e out=()
    for e in "$1"/*; do out+=("${e##*/}"); done
    printf '%s' "${#out[@]}"
    (( ${#out[@]} )) && printf ' %s' "$(join_by ' ' "${out[@]:0:8}")"
    (( ${#out[@]} > 8 )) && printf ' ...'
    return 0
}

cpuinfo="$PROCFS_ROOT/cpuinfo"
vendor=""
flags=""
if [[ -r "$cpuinfo" ]]; then
    vendor="$(grep -m1 '^vendor_id' "$cpuinfo" | sed 's/.*:[[:space:]]*//' || true)"
    flags="$(grep -m1 '^flags' "$cpuinfo" | sed 's/.*://' || true)"
fi
grub="in /etc/default/grub (GRUB_CMDLINE_LINUX), then run update-grub (or grub2-mkconfig -o /boot/grub2/grub.cfg) \
and reboot"
case "$vendor" in
    AuthenticAMD | HygonGenuine)
        amd=1; iommu_param="amd_iommu=on"; fw="AMD-Vi (IOMMU)"
        boot_fix="keep amd_iommu=off off the kernel command line (the AMD IOMMU is on by default) and add iommu=pt $grub" ;;
    GenuineIntel)
        amd=0; iommu_param="intel_iommu=on"; fw="VT-d"
        boot_fix="boot with 'intel_iommu=on iommu=pt': add it $grub" ;;
    *)
        amd=0; iommu_param="intel_iommu=on (Intel) or amd_iommu=on (AMD)"; fw="VT-d (Intel) or AMD-Vi (AMD)"
        boot_fix="boot with 'intel_iommu=on iommu=pt' (Intel; AMD has its IOMMU on by default): add it $grub" ;;
esac

# 1. CPU virtualization flags: informational only.
if [[ " $flags " == *" vmx "* ]]; then
    info cpu-virt "vmx present (Intel VT-x; VFIO itself needs the IOMMU, VT-d, checked below)"
elif [[ " $flags " == *" svm "* ]]; then
    info cpu-virt "svm present (AMD-V; VFIO itself needs the IOMMU, AMD-Vi, checked below)"
else
    info cpu-virt "no vmx/svm flag in $cpuinfo (not needed for VFIO; a VM without nested virtualization looks like this)"
fi

# 2. An IOMMU registered with the kernel.
n_iommu=0
for e in "$SYSFS_ROOT"/class/iommu/*; do n_iommu=$((n_iommu + 1)); done
if (( n_iommu > 0 )); then
    ok iommu "$(names_in "$SYSFS_ROOT/class/iommu") in $SYSFS_ROOT/class/iommu"
else
    iommu_missing iommu "no IOMMU registered ($SYSFS_ROOT/class/iommu is empty)" \
        "enable $fw in the firmware setup, then $boot_fix; in a QEMU guest add \
-machine q35,kernel-irqchip=split -device intel-iommu,caching-mode=on"
fi

# 3. IOMMU groups.
n_groups=0
for e in "$SYSFS_ROOT"/kernel/iommu_groups/*; do n_groups=$((n_groups + 1)); done
if (( n_groups > 0 )); then
    ok iommu-groups "$n_groups groups in $SYSFS_ROOT/kernel/iommu_groups"
else
    iommu_missing iommu-groups "no IOMMU groups ($SYSFS_ROOT/kernel/iommu_groups is empty): vfio-pci will refuse devices (error -22)" \
        "follows from the iommu line: enable the IOMMU and reboot; for tests without isolation only: \
modprobe vfio enable_unsafe_noiommu_mode=1"
fi

# 4. Kernel command line.
cmdline="$(read_line "$PROCFS_ROOT/cmdline")"
off_param=""
for p in $cmdline; do
    case "$p" in
        intel_iommu=off* | amd_iommu=off* | iommu=off) off_param="$p" ;;
    esac
done
on_param=""
for p in $cmdline; do
    case "$p" in
        intel_iommu=*on* | amd_iommu=on*) on_param="$p" ;;
    esac
done
if [[ -n "$off_param" ]]; then
    iommu_missing kernel-cmdline "'$off_param' on the kernel command line turns the IOMMU off" \
        "remove '$off_param' $grub"
elif [[ -n "$on_param" ]]; then
    ok kernel-cmdline "$on_param"
elif (( amd )); then
    ok kernel-cmdline "no amd_iommu=off (the AMD IOMMU is on by default)"
elif (( n_iommu > 0 )); then
    ok kernel-cmdline "no intel_iommu=on, but the kernel enabled the IOMMU by default"
else
    iommu_missing kernel-cmdline "no $iommu_param in $PROCFS_ROOT/cmdline" "$boot_fix"
fi

# 5. Modules (a built-in module with parameters also shows in /sys/module).
modules=(vfio vfio_iommu_type1 vfio_pci)
(( NOIOMMU )) && modules=(vfio vfio_pci)
for m in "${modules[@]}"; do
    if [[ -d "$SYSFS_ROOT/module/$m" ]]; then
        if [[ -e "$SYSFS_ROOT/module/$m/initstate" ]]; then
            ok "module $m" "loaded"
        else
            ok "module $m" "built in"
        fi
    else
        fix="modprobe ${m//_/-}"
        [[ "$m" == vfio_pci ]] && fix+=" (also loads vfio); devbind.sh bind does this for you"
        [[ "$m" == vfio_iommu_type1 ]] && fix+=" (the type-1 IOMMU backend our DMA mapper uses)"
        missing "module $m" "not loaded (no $SYSFS_ROOT/module/$m)" \
            "$fix; if modprobe cannot find it, install your distribution's extra kernel modules"
    fi
done
noiommu_param="$SYSFS_ROOT/module/vfio/parameters/enable_unsafe_noiommu_mode"
noiommu_on="'echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode' as root (at boot: \
vfio.enable_unsafe_noiommu_mode=1 on the kernel command line, or 'options vfio enable_unsafe_noiommu_mode=1' \
in /etc/modprobe.d/vfio-noiommu.conf), then bind the devices again with devbind.sh bind"
if (( NOIOMMU )); then
    if [[ "$(read_line "$noiommu_param")" == Y ]]; then
        ok vfio-noiommu "enable_unsafe_noiommu_mode=Y: devices without an IOMMU bind as /dev/vfio/noiommu-N; \
the apps use them with VFIO_UNSAFE_NOIOMMU=1 (the device can DMA anywhere in memory)"
    elif [[ -e "$noiommu_param" ]]; then
        missing vfio-noiommu "enable_unsafe_noiommu_mode is off" "$noiommu_on"
    elif [[ -d "$SYSFS_ROOT/module/vfio" ]]; then
        missing vfio-noiommu "this kernel's vfio has no no-IOMMU mode (no $noiommu_param: CONFIG_VFIO_NOIOMMU \
is not set, as in Debian's kernels)" "use a kernel built with CONFIG_VFIO_NOIOMMU=y, or rebuild vfio.ko with it \
as hw-setup/vm/run.sh does for its no-IOMMU boot"
    else
        missing vfio-noiommu "vfio is not loaded" "modprobe vfio enable_unsafe_noiommu_mode=1"
    fi
elif [[ "$(read_line "$noiommu_param")" == Y ]]; then
    info vfio-noiommu "enable_unsafe_noiommu_mode=Y: devices without an IOMMU bind as /dev/vfio/noiommu-N, \
which the apps use only with VFIO_UNSAFE_NOIOMMU=1 (DMA is unisolated; check with --noiommu)"
fi

# 6. The VFIO container device.
if [[ -e "$DEVFS_ROOT/vfio/vfio" ]]; then
    ok /dev/vfio/vfio "present ($DEVFS_ROOT/vfio/vfio)"
else
    missing /dev/vfio/vfio "no $DEVFS_ROOT/vfio/vfio" \
        "modprobe vfio; if it is still missing the kernel lacks the VFIO container (CONFIG_VFIO_CONTAINER=y)"
fi

# 7. Hugepages.
free_kb="$(hugepages_free_kb)"
if (( free_kb > 0 )); then
    ok hugepages "$(hugepages_summary)"
else
    missing hugepages "no free hugepages ($(hugepages_summary))" \
        "sudo $HERE/hugepages.sh reserve 512   (512 x 2M = 1 GiB per NUMA node)"
fi

# 8. RLIMIT_MEMLOCK: DMA memory is locked, and VFIO pins it again when
# mapping; both are checked against this limit unless CAP_IPC_LOCK is held.
if [[ -n "$NEED_MIB" ]]; then
    need_kb=$(( NEED_MIB * 1024 ))
    need_what="--need-mib"
else
    need_kb=0
    while read -r d; do
        kb="${d##*hugepages-}"; kb="${kb%kB}"
        nr="$(read_line "$d/nr_hugepages")"
        [[ "$nr" =~ ^[0-9]+$ ]] && need_kb=$(( need_kb + nr * kb ))
    done < <(hugepage_size_dirs)
    need_what="the reserved hugepages"
    if (( need_kb == 0 )); then
        need_kb=$(( 1024 * 1024 ))
        need_what="1 GiB, as no hugepages are reserved"
    fi
fi
cap_ipc_lock=0
capeff=""
if [[ -r "$PROCFS_ROOT/self/status" ]]; then
    capeff="$(grep -m1 '^CapEff:' "$PROCFS_ROOT/self/status" | awk '{print $2}' || true)"
fi
if [[ "$capeff" =~ ^[0-9a-fA-F]+$ ]]; then
    (( (16#$capeff >> 14) & 1 )) && cap_ipc_lock=1
elif (( EUID == 0 )); then
    cap_ipc_lock=1
fi
limit="$(ulimit -l)"
if [[ "$limit" == unlimited ]]; then
    ok memlock "ulimit -l is unlimited"
elif (( cap_ipc_lock )); then
    ok memlock "ulimit -l is $limit KiB, but this process has CAP_IPC_LOCK (root), which ignores it; \
a non-root user needs $(( need_kb / 1024 )) MiB or more (nonroot.sh setup)"
elif [[ "$limit" =~ ^[0-9]+$ ]] && (( limit >= need_kb )); then
    ok memlock "ulimit -l is $limit KiB >= $(( need_kb / 1024 )) MiB needed for $need_what"
else
    missing memlock "ulimit -l is $limit KiB < $(( need_kb / 1024 )) MiB needed for $need_what" \
        "as root: ulimit -l unlimited in this shell, or 'prlimit --pid $PPID --memlock=unlimited:unlimited' \
for the running shell, or 'sudo $HERE/nonroot.sh setup USER ADDR...' for a permanent limit (next login)"
fi

# 9. With --noiommu: CAP_SYS_RAWIO (bit 17), which the kernel asks for to
# open /dev/vfio/noiommu-N and to show physical addresses in pagemap.
if (( NOIOMMU )); then
    rawio=0
    if [[ "$capeff" =~ ^[0-9a-fA-F]+$ ]]; then
        (( (16#$capeff >> 17) & 1 )) && rawio=1
    elif (( EUID == 0 )); then
        rawio=1
    fi
    if (( rawio )); then
        ok cap-sys-rawio "this process has CAP_SYS_RAWIO"
    else
        missing cap-sys-rawio "no CAP_SYS_RAWIO: /dev/vfio/noiommu-N and physical addresses need it" \
            "run the apps as root, or 'setcap cap_sys_rawio,cap_ipc_lock+ep' on each app binary"
    fi
fi

echo
if (( MISSING == 0 )); then
    echo "result: ready for VFIO user-space drivers"
    exit 0
fi
echo "result: $MISSING item(s) MISSING; binding devices to vfio-pci or mapping DMA memory will fail until they are fixed"
exit 1
