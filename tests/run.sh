#!/usr/bin/env bash
# The whole test suite: unit, integration and end-to-end tests against the
# emulated devices, the hw-setup script tests and the app command-line tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Hugepages make the emulated runs use the same memory as hardware runs; as
# root we reserve some, otherwise the tests fall back to ordinary locked
# memory (and say so once).
if [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/nr_hugepages ]; then
    have=$(cat /proc/sys/vm/nr_hugepages)
    if [ "$have" -lt 512 ]; then
        echo 512 > /proc/sys/vm/nr_hugepages || true
    fi
    echo "hugepages: $(cat /proc/sys/vm/nr_hugepages) x 2 MiB reserved"
fi
ulimit -l unlimited 2>/dev/null || true

# The fuzz tests (fuzz_*) run once, on their own lines below, with output.
skip=(--skip fuzz_); [[ " $* " == *" -- "* ]] || skip=(-- "${skip[@]}")
cargo test --workspace --release "$@" "${skip[@]}"
# drivers::testing as another crate uses it; built only with its feature.
cargo test --release -p drivers --features test-utils --test test_utils
# The drivers against hostile devices, 2000 seeds per target: iterations,
# targets and the seed are printed (FUZZ_ITERS=N runs longer; a failure
# prints the command that replays it).
for t in fuzz_nvme fuzz_nic; do
    fuzz=(cargo test --release -p e2e-tests --test "$t" -- --nocapture)
    if [ $# -eq 0 ]; then "${fuzz[@]}"; else echo "$t: skipped (arguments given); run it alone with \`${fuzz[*]}\`"; fi
done

# The real-VFIO lane: the drivers in a QEMU guest with a virtual IOMMU,
# against QEMU's own nvme and igb models (hw-setup/vm/README.md). With
# CI=true (or VM_LANE=1) it must run and installs what it lacks; otherwise
# it runs when QEMU with the igb model is installed, and VM_LANE=0 skips it.
vm_lane_hint="run it alone with \`sudo bash hw-setup/vm/run.sh\` (installs QEMU 10 from backports) or with \`CI=true bash tests/run.sh\`"
if [ "${VM_LANE:-}" = 0 ]; then
    echo "vm lane: skipped (VM_LANE=0)"
elif [ "${CI:-}" = true ] || [ "${VM_LANE:-}" = 1 ]; then
    bash hw-setup/vm/run.sh
elif [ $# -gt 0 ]; then
    echo "vm lane: skipped (test filter given); $vm_lane_hint"
elif command -v qemu-system-x86_64 >/dev/null &&
    qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'; then
    bash hw-setup/vm/run.sh
else
    echo "vm lane: skipped (no qemu-system-x86_64 with the igb model); $vm_lane_hint"
fi
