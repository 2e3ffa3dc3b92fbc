#!/usr/bin/env bash
# Build pride twice (release, and AddressSanitizer + UndefinedBehaviorSanitizer) and run
# the whole test suite on both. Usage: tools/test.sh [--fast]  (--fast: release only)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
run() {
    local dir=$1; shift
    cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
    (cd "$dir" && ctest --output-on-failure --timeout 900 -j "$jobs")
}
run build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${1:-}" != "--fast" ]; then
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        run build-san -DCMAKE_BUILD_TYPE=Debug -DPRIDE_SANITIZE=ON
fi
