#!/usr/bin/env bash
# perf-vs-fi_pingpong.sh: pride-perf over tcp, pride-perf over ofi (provider
# tcp;ofi_rxm) and libfabric's own fi_pingpong (tcp;ofi_rxm, RDM endpoint) between two
# processes on this machine over 127.0.0.1, in one run, printed as two tables:
#
#   latency:   half round trip in usec. pride-perf -t lat gives the mean (t_avg) and
#              the median (t_typical); fi_pingpong gives the mean (usec/xfer).
#   bandwidth: MB/s (1e6 B). pride-perf -t bw streams a window of messages (BW average);
#              fi_pingpong has one message in flight (ping-pong: MB/sec = 2 x size x
#              iterations / time), so pride-perf's own ping-pong figure, size / t_avg,
#              is printed beside it for a like-for-like column.
#
# Loopback moves bytes memory to memory through the kernel: the physical limit printed
# with the tables is memcpy on this machine (pride-kbench). The tables, the command
# line, the machine and its load also go to a markdown file. fi_pingpong busy-polls its
# completion queue while pride blocks in poll: on a loaded machine with few cores that
# difference alone moves the numbers, so the load average is printed with them.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/perf-vs-fi_pingpong.sh [options]
  -l "S1 S2 .."   latency sizes, K/M suffixes     (default "8 64 1K 64K 1M 8M")
  -b "S1 S2 .."   bandwidth sizes                 (default "64K 1M 8M")
  -n ITERS        round trips per latency size     (default 1000; 1M and up: 200)
  -N ITERS        messages per bandwidth size      (default 1000; 8M: 128)
  -B DIR          pride build directory            (default <repo>/build)
  -o FILE         markdown output                  (default DIR/bench/perf-vs-fi_pingpong.md)
EOF
}

die() { echo "perf-vs-fi_pingpong.sh: $*" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lat_sizes="8 64 1K 64K 1M 8M" bw_sizes="64K 1M 8M" lat_iters="" bw_iters="" build="$repo/build" out=""
while [ $# -gt 0 ]; do
    case "$1" in
    -l) lat_sizes=${2:?}; shift 2 ;;
    -b) bw_sizes=${2:?}; shift 2 ;;
    -n) lat_iters=${2:?}; shift 2 ;;
    -N) bw_iters=${2:?}; shift 2 ;;
    -B) build=${2:?}; shift 2 ;;
    -o) out=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
    esac
done
for n in $lat_iters $bw_iters; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "bad iteration count '$n'"
done
command -v fi_pingpong >/dev/null || die "fi_pingpong is needed (Debian: libfabric-bin)"

# K/M suffixes (powers of 1024) to bytes
bytes() {
    local s=$1
    case "$s" in
    *[kK]) echo $((${s%?} << 10)) ;;
    *[mM]) echo $((${s%?} << 20)) ;;
    *) [[ "$s" =~ ^[0-9]+$ ]] || die "bad size '$s'"; echo "$s" ;;
    esac
}

if [ ! -x "$build/pride-perf" ] || [ ! -x "$build/pride-run" ]; then
    cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    ninja -C "$build" -j2 pride-perf pride-run pride-kbench
fi
mkdir -p "$build/bench"
out=${out:-$build/bench/perf-vs-fi_pingpong.md}
tmp=$(mktemp -d /tmp/pride-perf-vs.XXXXXX)
srv=""
cleanup() {
    [ -n "$srv" ] && kill "$srv" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# pride-perf's rows from rank 0's output, without the [0] prefix
perf() { # transport-args... -- perf-args...
    "$build/pride-run" -n 2 "$build/pride-perf" "$@" | sed -n 's/^\[0\] *\([0-9]\)/\1/p'
}

# fi_pingpong server and client on 127.0.0.1; prints "usec/xfer MB/sec"
pingpong() { # size iters
    local port=$((40000 + RANDOM % 20000)) try
    fi_pingpong -p "tcp;ofi_rxm" -e rdm -S "$1" -I "$2" -B "$port" >"$tmp/srv" 2>&1 &
    srv=$!
    for try in 1 2 3 4 5 6 7 8 9 10; do
        sleep 0.3
        if fi_pingpong -p "tcp;ofi_rxm" -e rdm -S "$1" -I "$2" -P "$port" 127.0.0.1 \
            >"$tmp/cli" 2>&1; then
            break
        fi
        if [ "$try" -eq 10 ]; then
            kill "$srv" 2>/dev/null || true
            die "fi_pingpong client failed: $(cat "$tmp/cli")"
        fi
    done
    wait "$srv" || true
    srv=""
    awk '$1 ~ /^[0-9]/ { u = $7; m = $6 } END { print u, m }' "$tmp/cli"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
memcpy=$("$build/pride-kbench" --size 64m --dtype uint8 --op sum --iters 4 |
    sed -n 's/.*memcpy GB\/s.*: *\([0-9.]*\).*/\1/p')
ofi=(--transport ofi --provider "tcp;ofi_rxm")

echo "== latency" >&2
printf '%s\n' "| size (B) | pride-perf tcp t_avg (t_typical) | pride-perf ofi t_avg (t_typical) | fi_pingpong usec/xfer |" \
    "|---:|---:|---:|---:|" >"$tmp/lat.md"
: >"$tmp/pp.txt"
for s in $lat_sizes; do
    b=$(bytes "$s")
    n=${lat_iters:-$([ "$b" -ge $((1 << 20)) ] && echo 200 || echo 1000)}
    t=$(perf -t lat -s "$b" -n "$n" --transport tcp)
    o=$(perf -t lat -s "$b" -n "$n" "${ofi[@]}")
    f=$(pingpong "$b" "$n")
    echo "$b $n | tcp: $t | ofi: $o | fi_pingpong: $f" >&2
    read -r _ _ _ _ tt ta _ <<<"$t"
    read -r _ _ _ _ ot oa _ <<<"$o"
    read -r fu fm <<<"$f"
    printf '| %s | %.2f (%.2f) | %.2f (%.2f) | %.2f |\n' "$b" "$ta" "$tt" "$oa" "$ot" "$fu" >>"$tmp/lat.md"
    echo "$b $ta $oa $fm" >>"$tmp/pp.txt"
done

echo "== bandwidth" >&2
printf '%s\n' "| size (B) | pride-perf tcp bw (window) | pride-perf ofi bw (window) | pride-perf tcp ping-pong | pride-perf ofi ping-pong | fi_pingpong (ping-pong) |" \
    "|---:|---:|---:|---:|---:|---:|" >"$tmp/bw.md"
for s in $bw_sizes; do
    b=$(bytes "$s")
    n=${bw_iters:-$([ "$b" -ge $((8 << 20)) ] && echo 128 || echo 1000)}
    t=$(perf -t bw -s "$b" -n "$n" --transport tcp)
    o=$(perf -t bw -s "$b" -n "$n" "${ofi[@]}")
    read -r _ _ _ ta _ <<<"$t"
    read -r _ _ _ oa _ <<<"$o"
    # ping-pong throughput at this size: from the latency runs when they had it
    pp=$(awk -v b="$b" '$1 == b { print }' "$tmp/pp.txt")
    if [ -z "$pp" ]; then
        n2=$([ "$b" -ge $((1 << 20)) ] && echo 200 || echo 1000)
        lt=$(perf -t lat -s "$b" -n "$n2" --transport tcp)
        lo=$(perf -t lat -s "$b" -n "$n2" "${ofi[@]}")
        read -r _ _ _ _ _ lta _ <<<"$lt"
        read -r _ _ _ _ _ loa _ <<<"$lo"
        read -r _ fm <<<"$(pingpong "$b" "$n2")"
        pp="$b $lta $loa $fm"
    fi
    read -r _ pta poa pfm <<<"$pp"
    echo "$b $n | tcp: $t | ofi: $o | ping-pong: $pp" >&2
    awk -v b="$b" -v ta="$ta" -v oa="$oa" -v pta="$pta" -v poa="$poa" -v pfm="$pfm" 'BEGIN {
        printf "| %d | %.0f | %.0f | %.0f | %.0f | %.0f |\n", b, ta, oa, b / pta, b / poa, pfm }' \
        >>"$tmp/bw.md"
done

commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
    echo "# pride-perf vs fi_pingpong (two processes, 127.0.0.1)"
    echo
    echo "- command: \`bench/perf-vs-fi_pingpong.sh -l \"$lat_sizes\" -b \"$bw_sizes\"${lat_iters:+ -n $lat_iters}${bw_iters:+ -N $bw_iters}\`"
    echo "- pride $commit; $(fi_info --version | head -1 | sed 's/fi_info: /libfabric /'), fi_pingpong -p \"tcp;ofi_rxm\" -e rdm"
    echo "- machine: $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d); shared with other work, load average $load_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
    echo "- physical limit on loopback: memcpy ${memcpy:-?} GB/s on 64 MiB buffers (pride-kbench)"
    echo
    echo "Latency, half round trip (usec):"
    echo
    cat "$tmp/lat.md"
    echo
    echo "Bandwidth (MB/s, 1e6 B): pride-perf bw streams a window of messages; ping-pong"
    echo "columns have one message in flight (size / half round trip), as fi_pingpong does."
    echo
    cat "$tmp/bw.md"
} >"$out"
cat "$out"
echo
echo "markdown: $out" >&2
