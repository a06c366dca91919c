#!/usr/bin/env bash
# nonroot.sh - let a non-root user run the drivers on devices bound to vfio-pci.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
. "$HERE/common.sh"

GROUP=vfio
LIMITS_FILE="$ETC_ROOT/security/limits.d/90-vfio-memlock.conf"
UDEV_RULE="$ETC_ROOT/udev/rules.d/90-vfio.rules"

usage() {
    cat <<EOF
Usage: $PROG setup USER ADDR...
       $PROG check USER ADDR...

Makes devices already bound to vfio-pci (devbind.sh bind ADDR) usable by USER
without root:
  - group '$GROUP' (created if missing) with USER in it;
  - /dev/vfio/N of each device's IOMMU group owned by group $GROUP, mode 0660
    (and a udev rule, $UDEV_RULE, so this holds after a rebind or reboot);
    /dev/vfio/vfio (the container) must be 0666, as the kernel creates it;
  - RLIMIT_MEMLOCK: $LIMITS_FILE with '@$GROUP - memlock unlimited' (new
    logins); the current session is raised with prlimit (printed).
No hugetlbfs mount is needed: the drivers map anonymous MAP_HUGETLB memory,
which only needs pages reserved with hugepages.sh.

'check' reports, line by line, what is still missing (exit 1 if anything).

ADDR is DDDD:BB:DD.F or BB:DD.F (domain 0000).

Environment: SYSFS_ROOT (/sys), PROCFS_ROOT (/proc), DEVFS_ROOT (/dev),
ETC_ROOT (/etc). With ETC_ROOT other than /etc the group is edited in
ETC_ROOT/group directly instead of with groupadd/usermod.

Exit status: 0 on success, 1 on errors (or, for check, if anything is
missing), 2 on usage errors.
EOF
}

usage_error() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    printf "Run '%s --help' for usage.\n" "$PROG" >&2
    exit 2
}

real_etc() { [[ "$ETC_ROOT" == /etc ]]; }

user_exists() {
    if real_etc; then
        id -u "$1" >/dev/null 2>&1
    else
        awk -F: -v u="$1" '$1 == u { found = 1 } END { exit !found }' "$ETC_ROOT/passwd" 2>/dev/null
    fi
}

group_gid() {
    if real_etc; then
        getent group "$1" | cut -d: -f3
    else
        awk -F: -v g="$1" '$1 == g { print $3 }' "$ETC_ROOT/group" 2>/dev/null
    fi
    return 0
}

user_in_group() {
    local user="$1" group="$2"
    if real_etc; then
        id -nG "$user" 2>/dev/null | tr ' ' '\n' | grep -qx "$group"
    else
        awk -F: -v g="$group" -v u="$user" '
            $1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) found = 1 }
            END { exit !found }' "$ETC_ROOT/group" 2>/dev/null
    fi
}

create_group() {
    if real_etc; then
        groupadd --system "$GROUP" || die "groupadd --system $GROUP failed; create the group by hand and rerun"
    else
        local gid
        gid="$(awk -F: '$3 >= 100 && $3 < 1000 && $3 > max { max = $3 } END { print (max ? max : 99) + 1 }' \
            "$ETC_ROOT/group" 2>/dev/null || echo 100)"
        printf '%s:x:%s:\n' "$GROUP" "$gid" >>"$ETC_ROOT/group" \
            || die "cannot append to $ETC_ROOT/group"
    fi
}

add_to_group() {
    local user="$1"
    if real_etc; then
        usermod -aG "$GROUP" "$user" || die "usermod -aG $GROUP $user failed; add the user by hand and rerun"
    else
        local tmp="$ETC_ROOT/group.hw-setup.tmp"
        if ! awk -F: -v OFS=: -v g="$GROUP" -v u="$user" \
            '$1 == g { $4 = ($4 == "" ? u : $4 "," u) } { print }' "$ETC_ROOT/group" >"$tmp"; then
            die "cannot edit $ETC_ROOT/group"
        fi
        mv "$tmp" "$ETC_ROOT/group" || die "cannot replace $ETC_ROOT/group"
    fi
}

# octal permission bits and group id of a file: "660 123"
mode_gid() {
    stat -L -c '%a %g' "$1"
}

# vfio_node_for ADDR: set NODE to the /dev/vfio node of ADDR's IOMMU group;
# on a problem return 1 with NODE_PROBLEM set to what is wrong and the fix.
NODE=""
NODE_PROBLEM=""
vfio_node_for() {
    local addr="$1" drv grp node
    NODE=""
    NODE_PROBLEM=""
    if [[ ! -e "$(pci_dev_dir "$addr")" ]]; then
        NODE_PROBLEM="no PCI device $addr; fix: check the address ('devbind.sh status' lists the devices)"
        return 1
    fi
    drv="$(pci_driver "$addr")"
    if [[ "$drv" != vfio-pci ]]; then
        NODE_PROBLEM="$addr is not bound to vfio-pci (driver: ${drv:-none}); fix: sudo $HERE/devbind.sh bind $addr"
        return 1
    fi
    grp="$(pci_iommu_group "$addr")"
    if [[ -z "$grp" ]]; then
        NODE_PROBLEM="$addr has no IOMMU group; fix: enable the IOMMU (see check-iommu.sh)"
        return 1
    fi
    if ! node="$(vfio_group_node "$grp")"; then
        NODE_PROBLEM="no $node for IOMMU group $grp of $addr; fix: rebind it (sudo $HERE/devbind.sh restore $addr; \
sudo $HERE/devbind.sh bind $addr)"
        return 1
    fi
    NODE="$node"
}

memlock_configured() {
    local f
    for f in "$LIMITS_FILE" "$ETC_ROOT/security/limits.conf" "$ETC_ROOT"/security/limits.d/*.conf; do
        [[ -r "$f" ]] || continue
        if awk -v u="$1" -v g="@$GROUP" '
            $1 !~ /^#/ && ($1 == u || $1 == g || $1 == "*") && ($2 == "-" || $2 == "hard" || $2 == "soft") \
                && $3 == "memlock" && $4 == "unlimited" { found = 1 }
            END { exit !found }' "$f"; then
            return 0
        fi
    done
    return 1
}

need_root() {
    if (( EUID != 0 )) && { real_etc || [[ "$DEVFS_ROOT" == /dev ]]; }; then
        die "setup changes groups, /dev/vfio and /etc/security; run it as root: sudo $0 $*"
    fi
}

cmd_setup() {
    local user="${1:-}" a gid node rc=0
    local -a addrs=()
    [[ -n "$user" ]] || usage_error "setup needs a user name and at least one PCI address"
    shift
    (( $# )) || usage_error "setup needs at least one PCI address after the user name"
    for a in "$@"; do addrs+=("$(addr_or_die "$a")"); done
    need_root setup "$user" "$@"
    user_exists "$user" || die "no user '$user'; create it first (useradd $user) or check the spelling"

    gid="$(group_gid "$GROUP")"
    if [[ -z "$gid" ]]; then
        create_group
        gid="$(group_gid "$GROUP")"
        [[ -n "$gid" ]] || die "group $GROUP still does not exist after creating it"
        echo "created group $GROUP (gid $gid)"
    fi
    if user_in_group "$user" "$GROUP"; then
        echo "$user is in group $GROUP"
    else
        add_to_group "$user"
        echo "added $user to group $GROUP (takes effect at the next login, or now in a shell with: newgrp $GROUP)"
    fi

    for a in "${addrs[@]}"; do
        if ! vfio_node_for "$a"; then
            err "$NODE_PROBLEM"
            rc=1
            continue
        fi
        node="$NODE"
        chgrp "$gid" "$node" || { err "cannot chgrp $node"; rc=1; continue; }
        chmod 0660 "$node" || { err "cannot chmod $node"; rc=1; continue; }
        echo "$a: $node is now group $GROUP, mode 0660"
    done

    local container="$DEVFS_ROOT/vfio/vfio"
    if [[ -e "$container" ]]; then
        local mode
        read -r mode _ < <(mode_gid "$container")
        if (( (8#$mode & 8#006) != 8#006 )); then
            chmod 0666 "$container"
            echo "$container is now mode 0666 (the container gives no device access by itself)"
        fi
    else
        err "no $container; fix: modprobe vfio (see check-iommu.sh)"
        rc=1
    fi

    mkdir -p "${UDEV_RULE%/*}"
    printf '%s\n' "# Written by hw-setup/nonroot.sh: VFIO group devices belong to group $GROUP." \
        "SUBSYSTEM==\"vfio\", GROUP=\"$GROUP\", MODE=\"0660\"" >"$UDEV_RULE"
    echo "wrote $UDEV_RULE (keeps /dev/vfio/N usable by $GROUP after a rebind or reboot)"
    if real_etc && command -v udevadm >/dev/null; then
        udevadm control --reload-rules || warn "udevadm control --reload-rules failed; the rule applies after a reboot"
    fi

    mkdir -p "${LIMITS_FILE%/*}"
    printf '%s\n' "# Written by hw-setup/nonroot.sh: DMA memory must be locked (mlock and VFIO pinning)." \
        "@$GROUP - memlock unlimited" >"$LIMITS_FILE"
    echo "wrote $LIMITS_FILE (memlock unlimited for group $GROUP at the next login, via pam_limits)"

    local free_kb
    free_kb="$(hugepages_free_kb)"
    if (( free_kb == 0 )); then
        warn "no free hugepages; reserve some: sudo $HERE/hugepages.sh reserve 512 (no hugetlbfs mount is needed)"
    fi

    cat <<EOF

For a session of $user that is already running, raise its memlock limit with
  sudo prlimit --pid PID --memlock=unlimited:unlimited
where PID is that shell's (for example: pgrep -u $user -n bash), and pick up
the new group there with 'newgrp $GROUP'. A systemd service needs
LimitMEMLOCK=infinity and SupplementaryGroups=$GROUP instead.
EOF
    return "$rc"
}

cmd_check() {
    local user="${1:-}" a gid node mode ngid missing=0
    local -a addrs=()
    [[ -n "$user" ]] || usage_error "check needs a user name and at least one PCI address"
    shift
    (( $# )) || usage_error "check needs at least one PCI address after the user name"
    for a in "$@"; do addrs+=("$(addr_or_die "$a")"); done
    local fix_setup="sudo $HERE/nonroot.sh setup $user ${addrs[*]}"

    ok() { printf '%-8s %s\n' OK "$1"; }
    miss() { printf '%-8s %s\n%-8s fix: %s\n' MISSING "$1" "" "$2"; missing=$((missing + 1)); }

    if user_exists "$user"; then ok "user $user exists"; else miss "no user $user" "useradd $user"; fi
    gid="$(group_gid "$GROUP")"
    if [[ -n "$gid" ]]; then
        ok "group $GROUP exists (gid $gid)"
        if user_in_group "$user" "$GROUP"; then
            ok "$user is in group $GROUP (a running session sees it after a new login or newgrp $GROUP)"
        else
            miss "$user is not in group $GROUP" "$fix_setup"
        fi
    else
        miss "no group $GROUP" "$fix_setup"
    fi

    local container="$DEVFS_ROOT/vfio/vfio"
    if [[ -e "$container" ]]; then
        read -r mode _ < <(mode_gid "$container")
        if (( (8#$mode & 8#006) == 8#006 )); then
            ok "$container is mode $mode"
        else
            miss "$container is mode $mode, others cannot open it" "chmod 0666 $container (or $fix_setup)"
        fi
    else
        miss "no $container" "modprobe vfio (see check-iommu.sh)"
    fi

    for a in "${addrs[@]}"; do
        if ! vfio_node_for "$a"; then
            miss "${NODE_PROBLEM%%; fix: *}" "${NODE_PROBLEM##*; fix: }"
            continue
        fi
        node="$NODE"
        read -r mode ngid < <(mode_gid "$node")
        if [[ -n "$gid" && "$ngid" == "$gid" ]] && (( (8#$mode & 8#060) == 8#060 )); then
            ok "$a: $node is group $GROUP, mode $mode"
        else
            miss "$a: $node has gid $ngid, mode $mode (needs group $GROUP with read/write)" "$fix_setup"
        fi
    done

    if memlock_configured "$user"; then
        ok "memlock unlimited for $user or @$GROUP in $ETC_ROOT/security (applies to new logins)"
    else
        miss "no 'memlock unlimited' for $user or @$GROUP in $ETC_ROOT/security/limits*" "$fix_setup"
    fi

    local free_kb
    free_kb="$(hugepages_free_kb)"
    if (( free_kb > 0 )); then
        ok "hugepages: $(hugepages_summary) (anonymous MAP_HUGETLB: no hugetlbfs mount needed)"
    else
        miss "no free hugepages ($(hugepages_summary))" "sudo $HERE/hugepages.sh reserve 512"
    fi

    echo
    if (( missing )); then
        echo "result: $missing item(s) MISSING for $user"
        return 1
    fi
    echo "result: $user can use ${addrs[*]} (after a new login, for the group and the memlock limit)"
}

CMD="${1:-}"
case "$CMD" in
    -h | --help | help) usage; exit 0 ;;
    setup) shift; cmd_setup "$@" ;;
    check) shift; cmd_check "$@" ;;
    "") usage_error "no command given (setup, check)" ;;
    *) usage_error "unknown command '$CMD' (expected setup or check)" ;;
esac
