#!/usr/bin/env bash
# hugepages.sh - show, reserve and free hugepages per NUMA node.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
. "$HERE/common.sh"

usage() {
    cat <<EOF
Usage: $PROG show
       $PROG reserve N [--size 2M|1G] [--node K]
       $PROG free [--size 2M|1G] [--node K]

  show      total, free, reserved and surplus hugepages per NUMA node and
            page size, and system-wide.
  reserve   set the pool to N pages of the given size (default 2M) on every
            NUMA node, or only on node K. Reports what the kernel actually
            gave, which can be less than asked (memory too fragmented or too
            small).
  free      set the pools to 0 (all sizes unless --size; all nodes unless
            --node). Pages still mapped by a process stay until it exits.

The drivers map anonymous MAP_HUGETLB memory, so no hugetlbfs mount is needed.
Changing the pools needs root.

Environment: SYSFS_ROOT (/sys) to run against another tree; the writes go to
the nr_hugepages files under it.

Exit status: 0 on success, 1 on errors, 2 on usage errors, 3 if the kernel
gave fewer pages than asked.
EOF
}

usage_error() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    printf "Run '%s --help' for usage.\n" "$PROG" >&2
    exit 2
}

# "2M" -> 2048 (kB). Accepts 2M, 2MB, 2048k, 2048kB, 1G, 1GB (any case).
size_kb() {
    local s="${1^^}"
    s="${s%B}"
    if [[ "$s" =~ ^([0-9]+)([KMG])$ ]]; then
        case "${BASH_REMATCH[2]}" in
            K) printf '%d' "${BASH_REMATCH[1]}" ;;
            M) printf '%d' $(( BASH_REMATCH[1] * 1024 )) ;;
            G) printf '%d' $(( BASH_REMATCH[1] * 1048576 )) ;;
        esac
        return 0
    fi
    return 1
}

node_dirs() {
    local n
    for n in "$SYSFS_ROOT"/devices/system/node/node[0-9]*; do
        [[ -d "$n/hugepages" ]] && printf '%s\n' "$n"
    done
    return 0
}

supported_sizes() {
    local d out=""
    while read -r d; do
        d="${d##*hugepages-}"
        out+="${out:+, }$(kb_label "${d%kB}")"
    done < <(hugepage_size_dirs)
    printf '%s' "${out:-none}"
}

need_root() {
    if real_sysfs && (( EUID != 0 )); then
        die "changing the hugepage pools needs root (it writes nr_hugepages under /sys); run: sudo $0 $*"
    fi
}

cmd_show() {
    local d kb n nd total=0 free=0 mem
    local -a nodes
    [[ -d "$SYSFS_ROOT/kernel/mm/hugepages" ]] \
        || die "no $SYSFS_ROOT/kernel/mm/hugepages: this kernel has no hugetlb support (CONFIG_HUGETLBFS); use a kernel built with it"
    mapfile -t nodes < <(node_dirs)
    printf '%-6s %-5s %8s %8s %9s %8s\n' NODE SIZE TOTAL FREE RESERVED SURPLUS
    for n in "${nodes[@]}"; do
        while read -r d; do
            kb="${d##*hugepages-}"; kb="${kb%kB}"
            d="$n/hugepages/hugepages-${kb}kB"
            [[ -d "$d" ]] || continue
            printf '%-6s %-5s %8s %8s %9s %8s\n' "${n##*/}" "$(kb_label "$kb")" \
                "$(read_line "$d/nr_hugepages")" "$(read_line "$d/free_hugepages")" "-" \
                "$(read_line "$d/surplus_hugepages")"
        done < <(hugepage_size_dirs)
    done
    while read -r d; do
        kb="${d##*hugepages-}"; kb="${kb%kB}"
        nd="$(read_line "$d/nr_hugepages")"
        mem="$(read_line "$d/free_hugepages")"
        printf '%-6s %-5s %8s %8s %9s %8s\n' all "$(kb_label "$kb")" "$nd" "$mem" \
            "$(read_line "$d/resv_hugepages")" "$(read_line "$d/surplus_hugepages")"
        [[ "$nd" =~ ^[0-9]+$ ]] && total=$(( total + nd * kb ))
        [[ "$mem" =~ ^[0-9]+$ ]] && free=$(( free + mem * kb ))
    done < <(hugepage_size_dirs)
    echo
    echo "hugepage memory: $(( total / 1024 )) MiB, free $(( free / 1024 )) MiB"
    echo "(RESERVED = promised to a mapping but not yet touched; the kernel counts it system-wide only)"
}

# set_pool FILE LABEL N: write N, read back what the kernel made of it.
# Prints the result line; returns 3 on a shortfall, 1 on a write error.
set_pool() {
    local file="$1" label="$2" want="$3" got
    if ! write_attr "$file" "$want"; then
        err "cannot write $want to $file: $WRITE_ERROR"
        return 1
    fi
    got="$(read_line "$file")"
    if [[ ! "$got" =~ ^[0-9]+$ ]]; then
        err "cannot read back $file (got '${got}')"
        return 1
    fi
    GOT_TOTAL=$(( GOT_TOTAL + got ))
    if (( got < want )); then
        echo "$label: asked $want, got $got (short by $(( want - got )))"
        return 3
    elif (( got > want )); then
        # Freeing: pages still mapped by a process cannot go yet.
        echo "$label: asked $want, still $got ($(( got - want )) in use by running processes; they go when those exit)"
        return 0
    fi
    echo "$label: asked $want, got $got"
    return 0
}

parse_size_node() {
    SIZE_KB=""; NODE=""
    while (( $# )); do
        case "$1" in
            --size)
                (( $# >= 2 )) || usage_error "--size needs a value: 2M or 1G"
                SIZE_KB="$(size_kb "$2")" || usage_error "invalid page size '$2': use 2M or 1G"
                shift ;;
            --size=*) SIZE_KB="$(size_kb "${1#--size=}")" || usage_error "invalid page size '${1#--size=}': use 2M or 1G" ;;
            --node)
                (( $# >= 2 )) || usage_error "--node needs a NUMA node number"
                NODE="$2"; shift ;;
            --node=*) NODE="${1#--node=}" ;;
            -h | --help) usage; exit 0 ;;
            *) usage_error "unexpected argument '$1'" ;;
        esac
        shift
    done
    if [[ -n "$NODE" && ! "$NODE" =~ ^[0-9]+$ ]]; then
        usage_error "invalid NUMA node '$NODE': use a number such as 0 (see '$PROG show')"
    fi
    return 0
}

# Files to write for a page size: per node if the kernel has NUMA nodes in
# sysfs, else the system-wide pool. Prints "FILE LABEL" lines.
pool_files() {
    local kb="$1" label n f found=0
    label="$(kb_label "$kb")"
    [[ -d "$SYSFS_ROOT/kernel/mm/hugepages/hugepages-${kb}kB" ]] \
        || die "page size $label is not supported here (no $SYSFS_ROOT/kernel/mm/hugepages/hugepages-${kb}kB; \
supported: $(supported_sizes)). Fix: use --size 2M$( (( kb == 1048576 )) && printf '%s' \
", or for 1G pages use a CPU with the pdpe1gb flag")"
    if [[ -n "$NODE" ]]; then
        n="$SYSFS_ROOT/devices/system/node/node$NODE"
        f="$n/hugepages/hugepages-${kb}kB/nr_hugepages"
        if [[ ! -e "$f" ]]; then
            local have
            have="$(node_dirs | sed 's|.*/node||' | paste -sd, -)"
            die "no NUMA node $NODE with $label pages (no $f); nodes here: ${have:-none (not a NUMA system: omit --node)}"
        fi
        printf '%s %s\n' "$f" "node$NODE $label"
        return 0
    fi
    while read -r n; do
        f="$n/hugepages/hugepages-${kb}kB/nr_hugepages"
        if [[ -e "$f" ]]; then
            printf '%s %s\n' "$f" "${n##*/} $label"
            found=1
        fi
    done < <(node_dirs)
    if (( ! found )); then
        printf '%s %s\n' "$SYSFS_ROOT/kernel/mm/hugepages/hugepages-${kb}kB/nr_hugepages" "all $label"
    fi
}

cmd_reserve() {
    local n="${1:-}" rc=0 r f label kb nfiles=0
    local -a pools
    [[ -n "$n" ]] || usage_error "reserve needs a page count, e.g. '$PROG reserve 512' (512 x 2M = 1 GiB per node)"
    [[ "$n" =~ ^[0-9]+$ ]] || usage_error "invalid page count '$n': use a whole number such as 512"
    shift
    parse_size_node "$@"
    kb="${SIZE_KB:-2048}"
    need_root reserve "$n" "$@"
    mapfile -t pools < <(pool_files "$kb")
    (( ${#pools[@]} )) || exit 1
    GOT_TOTAL=0
    for r in "${pools[@]}"; do
        f="${r%% *}"; label="${r#* }"
        nfiles=$((nfiles + 1))
        set_pool "$f" "$label" "$n" || {
            local s=$?
            (( s == 1 )) && exit 1
            rc=3
        }
    done
    echo "total: $GOT_TOTAL pages of $(kb_label "$kb") = $(( GOT_TOTAL * kb / 1024 )) MiB"
    if (( rc == 3 )); then
        err "the kernel gave fewer $(kb_label "$kb") pages than asked: not enough free contiguous memory. \
Fix: reserve right after boot, or free memory first (as root: sync; echo 3 > /proc/sys/vm/drop_caches; \
echo 1 > /proc/sys/vm/compact_memory) and retry, or reserve at boot with the kernel command line \
(hugepagesz=$(kb_label "$kb") hugepages=N)."
    fi
    return "$rc"
}

cmd_free() {
    local kb d r f label
    local -a sizes=() pools
    parse_size_node "$@"
    need_root free "$@"
    if [[ -n "$SIZE_KB" ]]; then
        sizes=("$SIZE_KB")
    else
        while read -r d; do
            d="${d##*hugepages-}"; sizes+=("${d%kB}")
        done < <(hugepage_size_dirs)
    fi
    GOT_TOTAL=0
    for kb in "${sizes[@]}"; do
        mapfile -t pools < <(pool_files "$kb")
        (( ${#pools[@]} )) || exit 1
        for r in "${pools[@]}"; do
            f="${r%% *}"; label="${r#* }"
            set_pool "$f" "$label" 0 || exit 1
        done
    done
    return 0
}

CMD="${1:-}"
case "$CMD" in
    -h | --help | help) usage; exit 0 ;;
    show) shift; (( $# == 0 )) || usage_error "show takes no arguments"; cmd_show ;;
    reserve) shift; cmd_reserve "$@" ;;
    free) shift; cmd_free "$@" ;;
    "") usage_error "no command given (show, reserve, free)" ;;
    *) usage_error "unknown command '$CMD' (expected show, reserve or free)" ;;
esac
