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

cargo test --workspace --release "$@"
