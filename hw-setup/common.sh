# shellcheck shell=bash
# common.sh - helpers shared by the hw-setup scripts. Sourced, never run.
#
# Every system path goes through an overridable root so the scripts can be run
# against a fake tree (see tests/tests/hw_setup.rs):
#   SYSFS_ROOT         default /sys
#   PROCFS_ROOT        default /proc
#   DEVFS_ROOT         default /dev
#   ETC_ROOT           default /etc          (nonroot.sh only)
#   HWSETUP_STATE_DIR  default /run/hw-setup (devbind.sh: original drivers)
# Writes really happen, to the files under those roots. Only things that cannot
# live in a tree (loading modules, editing the account database, reading the
# kernel log) are skipped when a root is not the real one; the script says so.

SYSFS_ROOT="${SYSFS_ROOT:-/sys}"
PROCFS_ROOT="${PROCFS_ROOT:-/proc}"
DEVFS_ROOT="${DEVFS_ROOT:-/dev}"
ETC_ROOT="${ETC_ROOT:-/etc}"
HWSETUP_STATE_DIR="${HWSETUP_STATE_DIR:-/run/hw-setup}"
# Strip trailing slashes so messages and comparisons stay tidy ("/" stays "/").
SYSFS_ROOT="${SYSFS_ROOT%/}"; SYSFS_ROOT="${SYSFS_ROOT:-/}"
PROCFS_ROOT="${PROCFS_ROOT%/}"; PROCFS_ROOT="${PROCFS_ROOT:-/}"
DEVFS_ROOT="${DEVFS_ROOT%/}"; DEVFS_ROOT="${DEVFS_ROOT:-/}"
ETC_ROOT="${ETC_ROOT%/}"; ETC_ROOT="${ETC_ROOT:-/}"

PROG="${0##*/}"

shopt -s nullglob

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

err() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
}

warn() {
    printf '%s: warning: %s\n' "$PROG" "$*" >&2
}

# True when we run against the real /sys (modules may be loaded, root matters).
real_sysfs() {
    [[ "$SYSFS_ROOT" == /sys ]]
}

# First line of a file, without trailing whitespace; empty if unreadable.
read_line() {
    local line=""
    if [[ -r "$1" ]]; then
        IFS= read -r line <"$1" || true
    fi
    line="${line%"${line##*[![:space:]]}"}"
    printf '%s' "$line"
}

# Last path component of a symlink's target, empty if there is no such link.
link_name() {
    local t
    t="$(readlink "$1" 2>/dev/null)" || return 0
    printf '%s' "${t##*/}"
}

# write_attr FILE VALUE: replace the value of an attribute (driver_override,
# nr_hugepages). On failure returns 1 and leaves the reason in WRITE_ERROR.
WRITE_ERROR=""
write_attr() {
    local out
    if out="$( { printf '%s\n' "$2" >"$1"; } 2>&1 )"; then
        WRITE_ERROR=""
        return 0
    fi
    WRITE_ERROR="${out##*: }"
    WRITE_ERROR="${WRITE_ERROR:-write failed}"
    return 1
}

# write_action FILE VALUE: write to an action file (bind, unbind,
# drivers_probe). Opened in append mode like dpdk-devbind does; sysfs ignores
# the offset, and in a fake tree the file keeps a log of every request.
write_action() {
    local out
    if out="$( { printf '%s\n' "$2" >>"$1"; } 2>&1 )"; then
        WRITE_ERROR=""
        return 0
    fi
    WRITE_ERROR="${out##*: }"
    WRITE_ERROR="${WRITE_ERROR:-write failed}"
    return 1
}

# normalize_addr ADDR: print the canonical DDDD:BB:DD.F form (lower case,
# domain 0000 implied for BB:DD.F); return 1 if ADDR is not a PCI address.
normalize_addr() {
    local a="${1,,}"
    if [[ "$a" =~ ^([0-9a-f]{4,8}:)?[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$ ]]; then
        [[ -n "${BASH_REMATCH[1]}" ]] || a="0000:$a"
        printf '%s' "$a"
        return 0
    fi
    return 1
}

addr_or_die() {
    normalize_addr "$1" || die "invalid PCI address '$1': expected DDDD:BB:DD.F or BB:DD.F in hex \
(domain:bus:device.function, device 00-1f, function 0-7), e.g. 0000:03:00.0 or 03:00.0; \
'devbind.sh status' lists the addresses on this host"
}

pci_dev_dir() {
    printf '%s/bus/pci/devices/%s' "$SYSFS_ROOT" "$1"
}

# Name of the driver bound to a PCI device, empty if none.
pci_driver() {
    link_name "$(pci_dev_dir "$1")/driver"
}

# IOMMU group number of a PCI device, empty if it has none (IOMMU off).
pci_iommu_group() {
    link_name "$(pci_dev_dir "$1")/iommu_group"
}

# Character device of a VFIO group: /dev/vfio/N, or /dev/vfio/noiommu-N in the
# kernel's unsafe no-IOMMU mode. Prints the path, returns 1 if neither exists.
vfio_group_node() {
    local g="$1"
    if [[ -e "$DEVFS_ROOT/vfio/$g" ]]; then
        printf '%s' "$DEVFS_ROOT/vfio/$g"
    elif [[ -e "$DEVFS_ROOT/vfio/noiommu-$g" ]]; then
        printf '%s' "$DEVFS_ROOT/vfio/noiommu-$g"
    else
        printf '%s' "$DEVFS_ROOT/vfio/$g"
        return 1
    fi
}

# Hugepage size directories of the system-wide pools, smallest size first.
hugepage_size_dirs() {
    local d
    for d in "$SYSFS_ROOT"/kernel/mm/hugepages/hugepages-*kB; do
        d="${d##*hugepages-}"
        printf '%s\n' "${d%kB}"
    done | sort -n | while read -r d; do
        printf '%s\n' "$SYSFS_ROOT/kernel/mm/hugepages/hugepages-${d}kB"
    done
}

# join_by SEP ITEM...: print the items separated by SEP.
join_by() {
    local sep="$1" out="" first=1 x
    shift
    for x in "$@"; do
        if (( first )); then out="$x"; first=0; else out+="$sep$x"; fi
    done
    printf '%s' "$out"
}

# "2048kB" -> "2M", "1048576kB" -> "1G", anything else stays in kB.
kb_label() {
    local kb="$1"
    if (( kb % 1048576 == 0 )); then
        printf '%dG' $(( kb / 1048576 ))
    elif (( kb % 1024 == 0 )); then
        printf '%dM' $(( kb / 1024 ))
    else
        printf '%dkB' "$kb"
    fi
}

# Total free hugepage memory in kB over all page sizes (system-wide counters).
hugepages_free_kb() {
    local d kb free total=0
    for d in "$SYSFS_ROOT"/kernel/mm/hugepages/hugepages-*kB; do
        kb="${d##*hugepages-}"; kb="${kb%kB}"
        free="$(read_line "$d/free_hugepages")"
        [[ "$free" =~ ^[0-9]+$ ]] || continue
        total=$(( total + free * kb ))
    done
    printf '%d' "$total"
}

# Per-size summary of free hugepages, e.g. "2M: 510 free of 512, 1G: 0 free of 0".
hugepages_summary() {
    local d kb nr free out=""
    while read -r d; do
        kb="${d##*hugepages-}"; kb="${kb%kB}"
        nr="$(read_line "$d/nr_hugepages")"
        free="$(read_line "$d/free_hugepages")"
        out+="${out:+, }$(kb_label "$kb"): ${free:-?} free of ${nr:-?}"
    done < <(hugepage_size_dirs)
    printf '%s' "${out:-no hugepage sizes in $SYSFS_ROOT/kernel/mm/hugepages}"
}
