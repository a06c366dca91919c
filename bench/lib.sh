# bench/lib.sh: pieces the bench scripts share; sourced, not run.
# Each function takes the calling script's name ($ME) for its messages.

# bench_root TREE: the checkout to build and measure, in ROOT: this one, or
# TREE (--tree DIR) if given.
bench_root() {
    ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    if [ -n "${1:-}" ]; then
        [ -f "$1/Cargo.toml" ] ||
            { echo "$ME: --tree $1 is not a checkout of this repository (no Cargo.toml)" >&2; exit 2; }
        ROOT=$(cd "$1" && pwd)
    fi
}

# bench_trace FILE EVENTS: the app's trace options in the array TRACE: none
# (tracing off), or --trace FILE (made absolute, as the runs happen in
# $ROOT) and --trace-events EVENTS if given.
bench_trace() {
    local file=${1:-} events=${2:-}
    TRACE=()
    if [ -n "$file" ]; then
        case "$file" in /*) ;; *) file=$PWD/$file ;; esac
        TRACE=(--trace "$file")
        [ -z "$events" ] || TRACE+=(--trace-events "$events")
    elif [ -n "$events" ]; then
        echo "$ME: --trace-events needs --trace FILE" >&2; exit 2
    fi
}

# bench_dir KEEP: the working directory in DIR: KEEP (--keep DIR, made and
# kept), or a temporary one removed at exit.
bench_dir() {
    if [ -n "${1:-}" ]; then
        mkdir -p "$1"; DIR=$(cd "$1" && pwd)
    else
        DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
    fi
}

# fit3 F1 F2 F3 E1 E2 E3 I1 I2 I3: solve I = fixed + a * F + b * E from three
# runs (differences against run 1, Cramer's rule) and print "a b" (a to
# 0.1, b to 1). F counts the units (frames, packets), E the idle rounds,
# I the instructions. "n/a n/a" when E grew in step with F (the two costs
# cannot be told apart); "n/a B" when b comes out at 0 or less: an idle
# round runs the loop, so it costs something, and a b of 0 or less means
# the runs' other variation outweighs their differences in idle rounds,
# which leaves a no better.
fit3() {
    awk -v f1="$1" -v f2="$2" -v f3="$3" -v e1="$4" -v e2="$5" -v e3="$6" \
        -v i1="$7" -v i2="$8" -v i3="$9" 'BEGIN {
        df2 = f2 - f1; de2 = e2 - e1; di2 = i2 - i1
        df3 = f3 - f1; de3 = e3 - e1; di3 = i3 - i1
        det = df2 * de3 - df3 * de2
        # Relative to the sizes involved: near 0 means the two columns are
        # (almost) proportional.
        scale = (df2 < 0 ? -df2 : df2) * ((de3 < 0 ? -de3 : de3) + 1) + (df3 < 0 ? -df3 : df3) * ((de2 < 0 ? -de2 : de2) + 1)
        if (scale == 0 || (det < 0 ? -det : det) < 0.05 * scale) { print "n/a n/a"; exit }
        a = (di2 * de3 - di3 * de2) / det; b = (df2 * di3 - df3 * di2) / det
        if (b <= 0) { printf "n/a %.0f\n", b; exit }
        printf "%.1f %.0f\n", a, b
    }'
}
