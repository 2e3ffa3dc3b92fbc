#!/usr/bin/env bash
# compare-mpi.sh: pride_allreduce against Open MPI's MPI_Allreduce, float32 sum, on
# this machine over loopback TCP, side by side.
#
# Builds what it needs (pride with CMake if pride-bench is absent, the MPI baseline
# bench/mpi_allreduce_bench.c with mpicc), runs both on each rank count with the same
# size sweep and iteration counts, and prints one table per rank count:
#   size | pride time | pride busbw | MPI time | MPI busbw | MPI time / pride time
# (a ratio above 1 means pride is faster). The tables, with the command line and the
# machine, also go to a markdown file. Both benches report the largest per-rank mean
# time after a barrier, and busbw = size/time * 2(P-1)/P, GB = 1e9 bytes.
#
# Open MPI runs with the ob1 PML and the tcp BTL on lo, so both move bytes through
# the kernel's TCP stack; mpi_yield_when_idle because ranks oversubscribe the cores.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/compare-mpi.sh [options]
  -p "P1 P2 .."   rank counts                       (default "2 4")
  -b MIN -e MAX   size range, K/M/G suffixes         (default 8 .. 256M)
  -f FACTOR       size factor                        (default 2)
  -n ITERS        timed iterations per size          (default 10)
  -w WARMUP       warm-up iterations per size        (default 2)
  -a ALGO         pride allreduce algorithm          (default auto)
  -B DIR          pride build directory              (default <repo>/build)
  -o FILE         markdown output                    (default DIR/bench/compare-mpi.md)
  -r REPS         run each side REPS times, alternating, and keep the
                  median time of each size                (default 1)
  --fifo          run both under SCHED_FIFO (chrt -f 10): shields them from
                  other work on a shared machine (both block or yield, so
                  the machine stays usable)
  --quick         -b 8 -e 64M -f 4 -n 5 -w 1 (under 2 minutes)
EOF
}

die() { echo "compare-mpi.sh: $*" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ranks="2 4" min=8 max=256M factor=2 iters=10 warmup=2 algo=auto build="$repo/build" out=""
reps=1 wrap=()
while [ $# -gt 0 ]; do
    case "$1" in
    -p) ranks=${2:?}; shift 2 ;;
    -b) min=${2:?}; shift 2 ;;
    -e) max=${2:?}; shift 2 ;;
    -f) factor=${2:?}; shift 2 ;;
    -n) iters=${2:?}; shift 2 ;;
    -w) warmup=${2:?}; shift 2 ;;
    -a) algo=${2:?}; shift 2 ;;
    -B) build=${2:?}; shift 2 ;;
    -o) out=${2:?}; shift 2 ;;
    -r) reps=${2:?}; shift 2 ;;
    --fifo) wrap=(chrt -f 10); shift ;;
    --quick) min=8 max=64M factor=4 iters=5 warmup=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
    esac
done
[[ "$reps" =~ ^[0-9]+$ && "$reps" -ge 1 ]] || die "bad -r '$reps' (an integer >= 1)"
[ ${#wrap[@]} -eq 0 ] || command -v chrt >/dev/null || die "--fifo needs chrt (util-linux)"
for p in $ranks; do
    [[ "$p" =~ ^[0-9]+$ && "$p" -ge 2 ]] || die "bad rank count '$p' (integers >= 2)"
done
command -v mpicc >/dev/null && command -v mpirun >/dev/null ||
    die "mpicc and mpirun are needed (Debian: openmpi-bin libopenmpi-dev)"

# ---- build -------------------------------------------------------------------------
if [ ! -x "$build/pride-bench" ]; then
    cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    ninja -C "$build" -j2 pride-bench
fi
[ -x "$build/pride-run" ] || ninja -C "$build" -j2 pride-run >/dev/null 2>&1 || true
mkdir -p "$build/bench"
mpibench="$build/bench/mpi_allreduce_bench"
if [ ! -x "$mpibench" ] || [ "$repo/bench/mpi_allreduce_bench.c" -nt "$mpibench" ]; then
    mpicc -O2 -Wall -Wextra -Werror -o "$mpibench" "$repo/bench/mpi_allreduce_bench.c"
fi
out=${out:-$build/bench/compare-mpi.md}
sweep=(-b "$min" -e "$max" -f "$factor" -n "$iters" -w "$warmup")

# ---- runs --------------------------------------------------------------------------
# Start P ranks of pride-bench: with pride-run when it is built, else by hand with a
# fresh file store; the first failing rank's status ends the run and the others.
run_pride() {
    local p=$1; shift
    if [ -x "$build/pride-run" ]; then
        "${wrap[@]}" "$build/pride-run" -n "$p" -- "$build/pride-bench" "$@"
        return
    fi
    local store pids=() r st=0 rc=0
    store=$(mktemp -d /tmp/pride-compare-store.XXXXXX)
    for ((r = 0; r < p; r++)); do
        PRIDE_RANK=$r PRIDE_NRANKS=$p PRIDE_STORE=file:$store PRIDE_JOB=compare-mpi \
            "${wrap[@]}" "$build/pride-bench" "$@" &
        pids+=($!)
    done
    for ((r = 0; r < p; r++)); do
        st=0
        wait -n || st=$?
        if [ "$st" -ne 0 ] && [ "$rc" -eq 0 ]; then
            rc=$st
            kill "${pids[@]}" 2>/dev/null || true
        fi
    done
    rm -rf "$store"
    return "$rc"
}

run_mpi() {
    local p=$1; shift
    "${wrap[@]}" mpirun --oversubscribe --allow-run-as-root -np "$p" --mca pml ob1 --mca btl tcp,self \
        --mca btl_tcp_if_include lo --mca mpi_yield_when_idle 1 "$mpibench" "$@"
}

# Median over repeated runs (CSV files given): for each size, the row of median time.
median_csv() {
    awk -F, 'FNR == 1 { if (NR == 1) print; next }
             { n[$5]++; row[$5, n[$5]] = $0; t[$5, n[$5]] = $10; if (!($5 in seen)) { seen[$5]; order[++k] = $5 } }
             END {
                 for (i = 1; i <= k; i++) {
                     s = order[i]; m = n[s]
                     for (a = 1; a <= m; a++) idx[a] = a
                     for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++)
                         if (t[s, idx[b]] < t[s, idx[a]]) { x = idx[a]; idx[a] = idx[b]; idx[b] = x }
                     print row[s, idx[int((m + 1) / 2)]]
                 }
             }' "$@"
}

# Join the two CSV files on size: size, pride time, pride busbw, MPI time, MPI busbw, ratio.
join_csv() {
    awk -F, 'FNR == 1 { next }
             NR == FNR { t[$5] = $10; b[$5] = $12; next }
             ($5 in t) { printf "%s %s %s %s %s %.2f\n", $5, t[$5], b[$5], $10, $12, $10 / t[$5] }' \
        "$1" "$2"
}

tmp=$(mktemp -d /tmp/pride-compare.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
ompi=$(mpirun --version 2>/dev/null | head -1)
{
    echo "# pride_allreduce vs MPI_Allreduce (float32 sum, loopback TCP)"
    echo
    echo "- command: \`bench/compare-mpi.sh -p \"$ranks\" -b $min -e $max -f $factor -n $iters -w $warmup -a $algo -r $reps${wrap[*]:+ --fifo}\`"
    echo "- pride $commit, algo $algo, transport ${PRIDE_TRANSPORT:-tcp}; $ompi (pml ob1, btl tcp on lo)"
    echo "- machine: $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- time: largest per-rank mean over $iters iterations after $warmup warm-ups (us),"
    echo "  median of $reps run(s) of each side${wrap[*]:+, both under SCHED_FIFO (chrt -f 10)};"
    echo "  busbw = size/time * 2(P-1)/P (GB/s, 1e9 B); ratio = MPI time / pride time (> 1: pride faster)"
} >"$out"

for p in $ranks; do
    for ((k = 1; k <= reps; k++)); do
        echo "== $p ranks: pride-bench (run $k of $reps)" >&2
        run_pride "$p" -c allreduce -d float32 -o sum -a "$algo" "${sweep[@]}" \
            --csv "$tmp/pride-$p.$k.csv" --json "$build/bench/pride-allreduce-$p.json" >&2
        echo "== $p ranks: MPI_Allreduce (run $k of $reps)" >&2
        run_mpi "$p" "${sweep[@]}" --csv "$tmp/mpi-$p.$k.csv" \
            --json "$build/bench/mpi-allreduce-$p.json" >&2
    done
    median_csv "$tmp"/pride-"$p".*.csv >"$tmp/pride-$p.csv"
    median_csv "$tmp"/mpi-"$p".*.csv >"$tmp/mpi-$p.csv"
    {
        echo
        echo "## $p ranks"
        echo
        echo "| size (B) | pride time (us) | pride busbw (GB/s) | MPI time (us) | MPI busbw (GB/s) | MPI/pride time |"
        echo "|---:|---:|---:|---:|---:|---:|"
        join_csv "$tmp/pride-$p.csv" "$tmp/mpi-$p.csv" |
            awk '{ printf "| %s | %.1f | %.3f | %.1f | %.3f | %.2f |\n", $1, $2, $3, $4, $5, $6 }'
    } >>"$out"
    printf '\n%d ranks\n%12s %14s %12s %14s %12s %8s\n' "$p" size "pride us" "pride GB/s" \
        "MPI us" "MPI GB/s" ratio
    join_csv "$tmp/pride-$p.csv" "$tmp/mpi-$p.csv" |
        awk '{ printf "%12s %14.1f %12.3f %14.1f %12.3f %8.2f\n", $1, $2, $3, $4, $5, $6 }'
done
echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the times)" >>"$out"
echo
echo "markdown table: $out"
