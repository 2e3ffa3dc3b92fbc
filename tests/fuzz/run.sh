#!/usr/bin/env bash
# Build the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) and run
# each for a bounded time. Not part of the CMake build.
#   tests/fuzz/run.sh          60 s per target
#   tests/fuzz/run.sh --ci     12 s per target (48 s in all), for ctest
#   tests/fuzz/run.sh --long   600 s per target
# Exit 0 when no target found a crash, leak or failed check; 77 when clang cannot
# build fuzzers here (libFuzzer missing: apt-get install libclang-rt-14-dev).
# Corpora are kept in $PRIDE_FUZZ_DIR (default: build-fuzz/ at the top of the tree)
# so later runs start where earlier ones stopped; crashes are written there too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
secs=60
case "${1:-}" in
    --ci) secs=12 ;;
    --long) secs=600 ;;
    "") ;;
    *) echo "usage: $0 [--ci|--long]" >&2; exit 2 ;;
esac
CC=${CLANG:-clang}
out=${PRIDE_FUZZ_DIR:-$top/build-fuzz}
mkdir -p "$out/obj"
probe="$out/probe.c"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' > "$probe"
if ! command -v "$CC" >/dev/null || ! "$CC" -fsanitize=fuzzer "$probe" -o "$out/probe" 2>/dev/null; then
    echo "fuzz: $CC cannot build libFuzzer targets here (install clang and libclang-rt-14-dev)"
    exit 77
fi
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags=(-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror
        -Wno-unused-function -I"$top/include" -I"$top/transport" $san)
# The library's transport files (not the optional backends), instrumented for
# coverage, in an archive: a target that compiles one of them in itself (to reach
# its static functions) keeps the linker from taking that member.
objs=()
for src in "$top"/transport/*.c; do
    case "$src" in */transport/store_redis.c | */transport/verbs*.c | */transport/ofi*.c | */transport/mpi.c) continue ;; esac
    o="$out/obj/$(basename "${src%.c}").o"
    "$CC" "${cflags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$o"
    objs+=("$o")
done
rm -f "$out/libpride-fuzz.a"
ar rcs "$out/libpride-fuzz.a" "${objs[@]}"
status=0
for src in "$here"/fuzz_*.c; do
    name=$(basename "${src%.c}")
    "$CC" "${cflags[@]}" -fsanitize=fuzzer "$src" "$out/libpride-fuzz.a" -lpthread -lm \
        -o "$out/$name"
    mkdir -p "$out/corpus/$name" "$out/crashes"
    log="$out/$name.log"
    if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$out/$name" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$out/crashes/$name-" -print_final_stats=1 \
        "$out/corpus/$name" >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
        echo "fuzz: $name: $runs inputs in ${secs} s, no failure"
    else
        echo "fuzz: $name FAILED (log: $log)"
        tail -n 40 "$log"
        status=1
    fi
done
exit $status
