#!/usr/bin/env bash
# devbind.sh - show NICs and NVMe drives, bind them to vfio-pci, give them back.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
. "$HERE/common.sh"

usage() {
    cat <<EOF
Usage: $PROG status
       $PROG bind [--force] ADDR...
       $PROG restore [--driver NAME] ADDR...      (alias: unbind)

Lists network controllers (PCI class 0x02) and NVMe drives (class 0x010802),
binds them to vfio-pci for the user-space drivers, and gives them back.

  status     address, vendor:device, driver, IOMMU group (and its other
             members), interface or block device names, what is in use.
  bind       bind each ADDR to vfio-pci via driver_override + drivers_probe
             (not new_id: NVMe IDs are not in vfio-pci's table). The original
             driver is recorded in \$HWSETUP_STATE_DIR. If vfio-pci does not
             take the device, it is given back to its original driver.
             Refuses a drive with a mounted filesystem (or swap, LVM, RAID on
             it), a NIC carrying the default route, a device without an IOMMU
             group, and other PCI classes, unless --force.
  restore    give each ADDR back to the driver it had before 'bind' (or to
             --driver NAME; --driver none leaves it without a driver) and
             clear driver_override.

ADDR is DDDD:BB:DD.F or BB:DD.F (domain 0000), e.g. 0000:03:00.0 or 03:00.0.

Options:
  --force          bind even if the device looks in use (see above)
  --driver NAME    driver for restore instead of the recorded one
  -h, --help       this text

Environment (for tests and unusual hosts):
  SYSFS_ROOT (/sys)  PROCFS_ROOT (/proc)  DEVFS_ROOT (/dev)
  HWSETUP_STATE_DIR (/run/hw-setup)   where original drivers are recorded
  HWSETUP_BIND_TIMEOUT (5)            seconds to wait for a driver to bind
With SYSFS_ROOT other than /sys, modules are not loaded (the script says what
it would load) and all writes go to the files under SYSFS_ROOT.

Exit status: 0 on success, 1 if any device could not be handled, 2 on usage
errors.
EOF
}

usage_error() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    printf "Run '%s --help' for usage.\n" "$PROG" >&2
    exit 2
}

BIND_TIMEOUT="${HWSETUP_BIND_TIMEOUT:-5}"
[[ "$BIND_TIMEOUT" =~ ^[0-9]+$ ]] \
    || die "HWSETUP_BIND_TIMEOUT='$BIND_TIMEOUT' is not a whole number of seconds; unset it or set e.g. 5"

# Drivers that leave an IOMMU group viable for VFIO: no driver, VFIO drivers,
# pci-stub, and PCIe port drivers on bridges (they do not do DMA for the host).
group_friendly_driver() {
    case "$1" in
        "" | vfio-pci | vfio* | pci-stub | pcieport) return 0 ;;
        *) return 1 ;;
    esac
}

is_nic_class() { [[ "$1" == 0x02* ]]; }
is_nvme_class() { [[ "$1" == 0x010802 ]]; }

pci_class() { read_line "$(pci_dev_dir "$1")/class"; }

pci_ids() {
    local d v i
    d="$(pci_dev_dir "$1")"
    v="$(read_line "$d/vendor")"; i="$(read_line "$d/device")"
    printf '%s:%s' "${v#0x}" "${i#0x}"
}

# Network interfaces of a PCI function: DEV/net/IF, or one level deeper for
# drivers that put a bus device in between (virtio: DEV/virtio0/net/IF).
# Symlinked children (driver, subsystem, physfn, virtfnN...) are not followed,
# so an SR-IOV VF's interface is not counted as the PF's.
pci_ifaces() {
    local d sub n
    d="$(pci_dev_dir "$1")"
    for n in "$d"/net/*; do printf '%s\n' "${n##*/}"; done
    for sub in "$d"/*/; do
        sub="${sub%/}"
        [[ -L "$sub" ]] && continue
        for n in "$sub"/net/*; do printf '%s\n' "${n##*/}"; done
    done
}

# Block devices (namespaces and partitions) behind an NVMe controller, as
# "NAME SYSFS_DIR" lines. Without native multipath the namespaces are
# DEV/nvme/nvmeX/nvmeXnY; with it the controller only has hidden path devices
# (nvmeXcZnY) and the disks live under the NVMe subsystem that links nvmeX.
nvme_blocks() {
    local d ctrl cname sub ns nsname part
    local -a nsdirs=()
    d="$(pci_dev_dir "$1")"
    for ctrl in "$d"/nvme/nvme*; do
        cname="${ctrl##*/}"
        for ns in "$ctrl"/nvme*; do
            [[ "${ns##*/}" =~ ^nvme[0-9]+n[0-9]+$ ]] && nsdirs+=("$ns")
        done
        for sub in "$SYSFS_ROOT"/class/nvme-subsystem/*; do
            [[ -e "$sub/$cname" ]] || continue
            for ns in "$sub"/nvme*; do
                [[ "${ns##*/}" =~ ^nvme[0-9]+n[0-9]+$ ]] && nsdirs+=("$ns")
            done
        done
    done
    for ns in "${nsdirs[@]}"; do
        nsname="${ns##*/}"
        printf '%s %s\n' "$nsname" "$ns"
        for part in "$ns/$nsname"p*; do
            printf '%s %s\n' "${part##*/}" "$part"
        done
    done
}

# Interfaces that carry an IPv4 or IPv6 default route.
default_route_ifaces() {
    local iface dest _gw _flags _ref _use _metric mask rest plen flags
    if [[ -r "$PROCFS_ROOT/net/route" ]]; then
        while read -r iface dest _gw _flags _ref _use _metric mask rest; do
            [[ "$iface" == Iface ]] && continue
            if [[ "$dest" == 00000000 && "$mask" == 00000000 ]]; then
                printf '%s\n' "$iface"
            fi
        done <"$PROCFS_ROOT/net/route"
    fi
    if [[ -r "$PROCFS_ROOT/net/ipv6_route" ]]; then
        # dest plen src srcplen nexthop metric refcnt use flags iface
        while read -r dest plen _ _ _ _ _ _ flags iface; do
            [[ "$dest" == 00000000000000000000000000000000 && "$plen" == 00 ]] || continue
            [[ "$iface" == lo || ! "$flags" =~ ^[0-9a-fA-F]+$ ]] && continue
            (( 16#$flags & 1 )) && printf '%s\n' "$iface"   # RTF_UP
        done <"$PROCFS_ROOT/net/ipv6_route"
    fi
    return 0
}

# The bridge or bond an interface is enslaved to, if any.
iface_master() {
    local m
    for m in "$SYSFS_ROOT"/class/net/"$1"/master "$(pci_dev_dir "$2")"/net/"$1"/master; do
        if [[ -L "$m" ]]; then
            link_name "$m"
            return 0
        fi
    done
    return 0
}

# Mount points of /dev/NAME, one per line.
mounts_of() {
    local src mnt _rest
    [[ -r "$PROCFS_ROOT/mounts" ]] || return 0
    while read -r src mnt _rest; do
        [[ "$src" == "/dev/$1" ]] && printf '%s\n' "$mnt"
    done <"$PROCFS_ROOT/mounts"
    return 0
}

swap_on() {
    local src _rest
    [[ -r "$PROCFS_ROOT/swaps" ]] || return 1
    while read -r src _rest; do
        [[ "$src" == "/dev/$1" ]] && return 0
    done <"$PROCFS_ROOT/swaps"
    return 1
}

# usage_of ADDR: print one line per reason the device is in use by the host
# (mounted filesystem, swap, holder device, interface with the default route).
usage_of() {
    local addr="$1" class name dir mnt h holders master
    local -a defroute
    class="$(pci_class "$addr")"
    if is_nvme_class "$class"; then
        while read -r name dir; do
            while read -r mnt; do
                [[ -n "$mnt" ]] && printf '%s is mounted on %s\n' "$name" "$mnt"
            done < <(mounts_of "$name")
            swap_on "$name" && printf '%s is in use as swap\n' "$name"
            holders=""
            for h in "$dir"/holders/*; do holders+="${holders:+, }${h##*/}"; done
            [[ -n "$holders" ]] && printf '%s is held by %s (LVM, RAID or dm-crypt on top of it)\n' "$name" "$holders"
        done < <(nvme_blocks "$addr")
    fi
    if is_nic_class "$class"; then
        mapfile -t defroute < <(default_route_ifaces | sort -u)
        while read -r name; do
            [[ -n "$name" ]] || continue
            master="$(iface_master "$name" "$addr")"
            for h in "${defroute[@]}"; do
                if [[ "$h" == "$name" ]]; then
                    printf 'its interface %s carries the default route\n' "$name"
                elif [[ -n "$master" && "$h" == "$master" ]]; then
                    printf 'its interface %s is part of %s, which carries the default route\n' "$name" "$master"
                fi
            done
        done < <(pci_ifaces "$addr" | sort -u)
    fi
    return 0
}

# The IOMMU group's other members, one "ADDR DRIVER" line each.
group_others() {
    local addr="$1" grp m
    grp="$(pci_iommu_group "$addr")"
    [[ -n "$grp" ]] || return 0
    for m in "$SYSFS_ROOT/kernel/iommu_groups/$grp/devices"/*; do
        m="${m##*/}"
        [[ "$m" == "$addr" ]] && continue
        printf '%s %s\n' "$m" "$(pci_driver "$m")"
    done
}

noiommu_enabled() {
    [[ "$(read_line "$SYSFS_ROOT/module/vfio/parameters/enable_unsafe_noiommu_mode")" == Y ]]
}

state_file() { printf '%s/%s' "$HWSETUP_STATE_DIR" "$1"; }

recorded_driver() {
    local f line
    f="$(state_file "$1")"
    [[ -r "$f" ]] || return 0
    while IFS= read -r line; do
        if [[ "$line" == driver=* ]]; then
            printf '%s' "${line#driver=}"
            return 0
        fi
    done <"$f"
}

# --------------------------------------------------------------------- status

iommu_fix="enable VT-d (Intel) or AMD-Vi (AMD) in the firmware setup and boot with \
intel_iommu=on or amd_iommu=on; for testing without isolation only: \
modprobe vfio enable_unsafe_noiommu_mode=1 (see check-iommu.sh)"

status_device() {
    local addr="$1" class drv grp line name names dir recorded m mdrv node
    local -a blocks
    class="$(pci_class "$addr")"
    drv="$(pci_driver "$addr")"
    grp="$(pci_iommu_group "$addr")"
    line="  $addr $(pci_ids "$addr") driver=${drv:-none} iommu_group=${grp:-none}"
    if is_nic_class "$class"; then
        names="$(pci_ifaces "$addr" | sort -u | paste -sd, -)"
        [[ -n "$names" ]] && line+=" if=$names"
    else
        blocks=()
        while read -r name dir; do blocks+=("$name"); done < <(nvme_blocks "$addr")
        if (( ${#blocks[@]} )); then
            names="$(IFS=,; printf '%s' "${blocks[*]}")"
            line+=" block=$names"
        fi
    fi
    if [[ "$drv" == vfio-pci && -n "$grp" ]]; then
        node="$(vfio_group_node "$grp")" || true
        line+=" dev=$node"
    fi
    recorded="$(recorded_driver "$addr")"
    [[ -n "$recorded" ]] && line+=" original=$recorded"
    printf '%s\n' "$line"
    while IFS= read -r m; do
        [[ -n "$m" ]] && printf '      in use: %s\n' "$m"
    done < <(usage_of "$addr")
    while read -r m mdrv; do
        if group_friendly_driver "$mdrv"; then
            printf '      group %s also has: %s driver=%s\n' "$grp" "$m" "${mdrv:-none}"
        else
            printf '      group %s also has: %s driver=%s (host driver: bind it too before using the group)\n' \
                "$grp" "$m" "$mdrv"
        fi
    done < <(group_others "$addr")
}

cmd_status() {
    local d addr class ngroups
    local -a nics=() nvmes=()
    [[ -d "$SYSFS_ROOT/bus/pci/devices" ]] \
        || die "no $SYSFS_ROOT/bus/pci/devices: sysfs is not mounted here (mount -t sysfs sysfs /sys) or SYSFS_ROOT is wrong"
    for d in "$SYSFS_ROOT"/bus/pci/devices/*; do
        addr="${d##*/}"
        class="$(pci_class "$addr")"
        if is_nic_class "$class"; then
            nics+=("$addr")
        elif is_nvme_class "$class"; then
            nvmes+=("$addr")
        fi
    done
    local -a groups=("$SYSFS_ROOT"/kernel/iommu_groups/*)
    ngroups=${#groups[@]}
    if (( ngroups > 0 )); then
        echo "IOMMU: $ngroups groups"
    elif noiommu_enabled; then
        echo "IOMMU: none, vfio no-IOMMU mode is on (unsafe: no DMA isolation)"
    else
        echo "IOMMU: none (binding to vfio-pci will fail; fix: $iommu_fix)"
    fi
    echo
    echo "Network controllers (PCI class 0x02):"
    if (( ${#nics[@]} == 0 )); then echo "  (none)"; fi
    for addr in "${nics[@]}"; do status_device "$addr"; done
    echo
    echo "NVMe drives (PCI class 0x010802):"
    if (( ${#nvmes[@]} == 0 )); then echo "  (none)"; fi
    for addr in "${nvmes[@]}"; do status_device "$addr"; done
}

# ----------------------------------------------------------------- bind/restore

need_root() {
    if real_sysfs && (( EUID != 0 )); then
        die "changing device drivers needs root (it writes to /sys/bus/pci); run: sudo $0 $*"
    fi
}

# ensure_driver NAME: make sure a PCI driver is registered, loading its module
# on a real system. Returns 1 with a message if it is not available.
ensure_driver() {
    local name="$1" module
    [[ -d "$SYSFS_ROOT/bus/pci/drivers/$name" ]] && return 0
    module="$name"
    if real_sysfs; then
        if ! modprobe "$module"; then
            err "could not load module $module: install the kernel's extra modules \
(e.g. linux-modules-extra-\$(uname -r)) or rebuild the kernel with it"
            return 1
        fi
    else
        echo "would load module $module (skipped: SYSFS_ROOT=$SYSFS_ROOT is not /sys)"
    fi
    if [[ ! -d "$SYSFS_ROOT/bus/pci/drivers/$name" ]]; then
        err "PCI driver $name is not available (no $SYSFS_ROOT/bus/pci/drivers/$name): \
load it with 'modprobe $module'"
        return 1
    fi
}

# wait_bound ADDR DRIVER: wait until DRIVER has claimed ADDR. The kernel then
# links DRIVER's directory to the device: /sys/bus/pci/drivers/DRIVER/ADDR.
wait_bound() {
    local addr="$1" drv="$2" i
    for (( i = 0; i <= BIND_TIMEOUT * 10; i++ )); do
        [[ -e "$SYSFS_ROOT/bus/pci/drivers/$drv/$addr" ]] && return 0
        (( i < BIND_TIMEOUT * 10 )) && sleep 0.1
    done
    return 1
}

# Why vfio-pci did not take a device, and how to fix it.
bind_failure_reason() {
    local addr="$1" grp log
    grp="$(pci_iommu_group "$addr")"
    if [[ -z "$grp" ]] && ! noiommu_enabled; then
        printf 'the device has no IOMMU group, so vfio-pci refuses it (kernel log: "vfio-pci: probe of %s failed with error -22"). Fix: %s' \
            "$addr" "$iommu_fix"
        return 0
    fi
    printf 'vfio-pci did not claim the device'
    if real_sysfs && log="$(dmesg 2>/dev/null | grep -F "$addr" | tail -n 3)" && [[ -n "$log" ]]; then
        printf '; kernel log:\n%s\n' "$log"
    else
        printf " (see 'dmesg | grep %s')" "$addr"
    fi
    printf '. Fix: check that no other process holds the device, and run check-iommu.sh'
}

# restore_one ADDR TARGET [CURRENT]: give ADDR to TARGET ("none": no driver),
# clearing driver_override. CURRENT is the driver holding it now, read from
# sysfs unless the caller knows it (after our own unbind). Returns 1 with a
# message on failure.
restore_one() {
    local addr="$1" target="$2" d cur
    d="$(pci_dev_dir "$addr")"
    if (( $# >= 3 )); then cur="$3"; else cur="$(pci_driver "$addr")"; fi
    if ! write_attr "$d/driver_override" ""; then
        err "$addr: cannot clear $d/driver_override: $WRITE_ERROR"
        return 1
    fi
    if [[ -n "$cur" && "$cur" != "$target" ]]; then
        if ! write_action "$SYSFS_ROOT/bus/pci/drivers/$cur/unbind" "$addr"; then
            err "$addr: cannot unbind from $cur: $WRITE_ERROR; stop the program using the device and retry"
            return 1
        fi
    fi
    if [[ "$target" == none ]]; then
        echo "$addr: left without a driver"
        return 0
    fi
    if [[ "$cur" == "$target" ]]; then
        echo "$addr: already bound to $target"
        return 0
    fi
    ensure_driver "$target" || return 1
    if ! write_action "$SYSFS_ROOT/bus/pci/drivers/$target/bind" "$addr"; then
        # Some drivers refuse an explicit bind; let the bus pick again.
        write_action "$SYSFS_ROOT/bus/pci/drivers_probe" "$addr" || true
    fi
    if ! wait_bound "$addr" "$target"; then
        err "$addr: could not give the device back to $target; try 'echo $addr > /sys/bus/pci/drivers_probe', \
or remove and rescan it: 'echo 1 > /sys/bus/pci/devices/$addr/remove; echo 1 > /sys/bus/pci/rescan'"
        return 1
    fi
    echo "$addr: bound to $target"
}

# bind_one ADDR: returns 1 with a message if the device was not bound.
bind_one() {
    local addr="$1" d cur class grp reason sf
    local -a used
    d="$(pci_dev_dir "$addr")"
    cur="$(pci_driver "$addr")"
    if [[ "$cur" == vfio-pci ]]; then
        echo "$addr: already bound to vfio-pci"
        BOUND+=("$addr")
        return 0
    fi
    class="$(pci_class "$addr")"
    if ! is_nic_class "$class" && ! is_nvme_class "$class" && (( ! FORCE )); then
        err "refusing to bind $addr: its class ${class:-unknown} is neither a network controller (0x02xxxx) \
nor an NVMe drive (0x010802); pass --force if you really mean this device"
        return 1
    fi
    mapfile -t used < <(usage_of "$addr")
    if (( ${#used[@]} )); then
        if (( FORCE )); then
            warn "$addr is in use, binding anyway (--force): $(join_by '; ' "${used[@]}")"
        else
            local fix
            if is_nic_class "$class"; then
                fix="move the default route to another interface first (or use another port), or pass --force \
(this host then loses that network path)"
            else
                fix="unmount its filesystems (umount), swapoff, or stop the LVM/RAID/dm-crypt on it first, \
or pass --force (the host then loses the drive under its users)"
            fi
            err "refusing to bind $addr: $(join_by '; ' "${used[@]}"). Fix: $fix"
            return 1
        fi
    fi
    grp="$(pci_iommu_group "$addr")"
    if [[ -z "$grp" ]] && ! noiommu_enabled; then
        if (( FORCE )); then
            warn "$addr has no IOMMU group; trying anyway (--force)"
        else
            err "refusing to bind $addr: it has no IOMMU group, so vfio-pci would fail to probe it \
(error -22). Fix: $iommu_fix"
            return 1
        fi
    fi
    ensure_driver vfio-pci || return 1

    # Remember the original driver before touching anything; keep an older
    # record (a second bind must not overwrite it with "vfio-pci").
    sf="$(state_file "$addr")"
    if ! mkdir -p "$HWSETUP_STATE_DIR" 2>/dev/null; then
        err "cannot create state directory $HWSETUP_STATE_DIR: run as root or set HWSETUP_STATE_DIR to a writable directory"
        return 1
    fi
    if [[ ! -e "$sf" ]]; then
        if ! printf 'driver=%s\n' "${cur:-none}" >"$sf" 2>/dev/null; then
            err "cannot write $sf: run as root or set HWSETUP_STATE_DIR to a writable directory"
            return 1
        fi
    fi

    if ! write_attr "$d/driver_override" vfio-pci; then
        err "$addr: cannot write $d/driver_override: $WRITE_ERROR (the kernel needs driver_override support, Linux 3.16+)"
        rm -f "$sf"
        return 1
    fi
    if [[ -n "$cur" ]]; then
        if ! write_action "$SYSFS_ROOT/bus/pci/drivers/$cur/unbind" "$addr"; then
            err "$addr: cannot unbind from $cur: $WRITE_ERROR"
            write_attr "$d/driver_override" "" || true
            rm -f "$sf"
            return 1
        fi
    fi
    write_action "$SYSFS_ROOT/bus/pci/drivers_probe" "$addr" || true
    if wait_bound "$addr" vfio-pci; then
        grp="$(pci_iommu_group "$addr")"
        echo "$addr: bound to vfio-pci (was ${cur:-no driver}; recorded in $sf), IOMMU group ${grp:-none}"
        BOUND+=("$addr")
        return 0
    fi

    reason="$(bind_failure_reason "$addr")"
    # We unbound it from $cur ourselves; it has no driver now, unless
    # vfio-pci claimed it after all (too late for the wait above).
    local now=""
    [[ -e "$SYSFS_ROOT/bus/pci/drivers/vfio-pci/$addr" ]] && now=vfio-pci
    if [[ -n "$cur" ]] && restore_one "$addr" "$cur" "$now" >/dev/null; then
        rm -f "$sf"
        err "binding $addr to vfio-pci failed: $reason. The device was given back to $cur."
    elif [[ -z "$cur" ]]; then
        write_attr "$d/driver_override" "" || true
        rm -f "$sf"
        err "binding $addr to vfio-pci failed: $reason. The device had no driver before and has none now."
    else
        err "binding $addr to vfio-pci failed: $reason. Giving it back to $cur ALSO failed; \
'$PROG restore $addr' retries (the original driver stays recorded in $sf)."
    fi
    return 1
}

# After binding, every member of each group must be without a host driver.
# Arguments: the devices bound to vfio-pci by this run (their driver links
# are not re-read, so the check is the same on a live and on a fake tree).
warn_groups() {
    local addr grp m mdrv
    local -A seen=() ours=()
    for addr in "$@"; do ours[$addr]=1; done
    for addr in "$@"; do
        grp="$(pci_iommu_group "$addr")"
        [[ -n "$grp" && -z "${seen[$grp]:-}" ]] || continue
        seen[$grp]=1
        local -a bad=()
        while read -r m mdrv; do
            [[ -n "${ours[$m]:-}" ]] && continue
            group_friendly_driver "$mdrv" || bad+=("$m ($mdrv)")
        done < <(group_others "$addr")
        if (( ${#bad[@]} )); then
            local list="" b
            for b in "${bad[@]}"; do list+="${list:+, }$b"; done
            warn "IOMMU group $grp is not usable yet: $list \
still has a host driver. All devices of a group go to one process: bind them too \
('$PROG bind ${bad[*]%% *}') or move the card to another slot."
        fi
    done
}

cmd_bind() {
    local a rc=0
    local -a addrs=()
    (( $# )) || usage_error "bind needs at least one PCI address"
    for a in "$@"; do addrs+=("$(addr_or_die "$a")"); done
    for a in "${addrs[@]}"; do
        [[ -e "$(pci_dev_dir "$a")" ]] \
            || die "no PCI device $a (no $(pci_dev_dir "$a")); '$PROG status' lists the NICs and NVMe drives"
    done
    need_root bind "$@"
    BOUND=()
    for a in "${addrs[@]}"; do
        bind_one "$a" || rc=1
    done
    (( ${#BOUND[@]} == 0 )) || warn_groups "${BOUND[@]}"
    return "$rc"
}

cmd_restore() {
    local a target rc=0
    local -a addrs=()
    (( $# )) || usage_error "restore needs at least one PCI address"
    for a in "$@"; do addrs+=("$(addr_or_die "$a")"); done
    for a in "${addrs[@]}"; do
        [[ -e "$(pci_dev_dir "$a")" ]] \
            || die "no PCI device $a (no $(pci_dev_dir "$a")); '$PROG status' lists the NICs and NVMe drives"
    done
    need_root restore "$@"
    for a in "${addrs[@]}"; do
        target="$DRIVER"
        [[ -n "$target" ]] || target="$(recorded_driver "$a")"
        if [[ -z "$target" ]]; then
            err "$a: no record of its original driver in $(state_file "$a") (not bound by this script, or \
the record was lost at reboot); name it: '$PROG restore --driver nvme $a' (or ixgbe, igb, ..., none)"
            rc=1
            continue
        fi
        if restore_one "$a" "$target"; then
            rm -f "$(state_file "$a")"
        else
            rc=1
        fi
    done
    return "$rc"
}

# ----------------------------------------------------------------------- main

FORCE=0
DRIVER=""
CMD=""
ARGS=()
while (( $# )); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --force) FORCE=1 ;;
        --driver)
            (( $# >= 2 )) || usage_error "--driver needs a driver name (e.g. nvme, ixgbe, igb, none)"
            DRIVER="$2"; shift ;;
        --driver=*) DRIVER="${1#--driver=}" ;;
        -*) usage_error "unknown option '$1'" ;;
        *)
            if [[ -z "$CMD" ]]; then CMD="$1"; else ARGS+=("$1"); fi ;;
    esac
    shift
done
[[ -z "$DRIVER" || "$DRIVER" =~ ^[A-Za-z0-9_.-]+$ ]] || usage_error "invalid driver name '$DRIVER'"

case "$CMD" in
    status) (( ${#ARGS[@]} == 0 )) || usage_error "status takes no arguments"; cmd_status ;;
    bind) [[ -z "$DRIVER" ]] || usage_error "--driver is for restore; bind always binds to vfio-pci"
          cmd_bind "${ARGS[@]}" ;;
    restore | unbind) cmd_restore "${ARGS[@]}" ;;
    "") usage_error "no command given (status, bind, restore)" ;;
    *) usage_error "unknown command '$CMD' (expected status, bind, restore or unbind)" ;;
esac
