#!/usr/bin/env bash
# cluster-compare.sh: pride_allreduce against Open MPI's MPI_Allreduce (float32 sum) on
# an emulated cluster: hosts are network namespaces made by tools/pride-cluster, each
# link shaped to a line rate with tc tbf, and both libraries run on the same hosts in
# the same run.
#
# The one idea: for every rate and host count, build the cluster once, run pride-bench
# with one rank per host (pride-run --netns), then MPI_Allreduce (bench/
# mpi_allreduce_bench.c) with one rank per host, and print busbw as a fraction of the
# line rate for both. mpirun runs inside the first host and starts a daemon in every
# other host through bench/netns-rsh, a remote-shell agent that maps a host address to
# `ip netns exec`; Open MPI uses ob1 + the tcp BTL on eth0, the hosts' only link.
#
# Per rate and host count it prints
#   size | pride busbw | pride/line | MPI busbw | MPI/line | pride/MPI
# and it writes to the output directory: results.csv (every row, with the load average
# and CPU use of each run), results.md (the tables, the command, the machine), summary.md
# (one compact table per rate, bench/cluster-summary.awk), and the raw CSV/JSON of each
# bench. --plot draws busbw against size (bench/plot-cluster.sh).
# The cluster is torn down on exit, failure or interrupt.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/cluster-compare.sh [options]     (as root)
  -H "N1 N2 .."   host counts (one rank per host)       (default "4 8")
  -r "R1 R2 .."   link rates: 1gbit 10gbit none          (default "1gbit 10gbit")
  -b MIN -e MAX   size range, K/M/G suffixes             (default 64K .. 64M)
  -f FACTOR       size factor                            (default 2)
  -n ITERS        timed iterations per size              (default 10)
  -w WARMUP       warm-up iterations per size            (default 2)
  -a ALGO         pride allreduce algorithm              (default auto)
  -B DIR          pride build directory                  (default <repo>/build)
  -O DIR          output directory                       (default DIR/bench/cluster)
  --prefix P      namespace prefix for pride-cluster     (default cmp)
  --plot [PNG]    also draw busbw against size at 1gbit  (default PNG: OUT/allreduce-1gbit.png)
  --quick         -b 64K -e 16M -f 4 -n 3 -w 1 (about 2 minutes)
The defaults run 4 and 8 hosts at 1 and 10 Gbit/s in about 10 minutes.
EOF
}

die() { echo "cluster-compare.sh: $*" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
hosts_list="4 8" rates="1gbit 10gbit" min=64K max=64M factor=2 iters=10 warmup=2 algo=auto
build="$repo/build" outdir="" prefix=cmp plot="" plot_png=""
args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
    -H|-r|-b|-e|-f|-n|-w|-a|-B|-O|--prefix) [ $# -ge 2 ] || die "$1 needs a value" ;;
    esac
    case "$1" in
    -H) hosts_list=${2:?}; shift 2 ;;
    -r) rates=${2:?}; shift 2 ;;
    -b) min=${2:?}; shift 2 ;;
    -e) max=${2:?}; shift 2 ;;
    -f) factor=${2:?}; shift 2 ;;
    -n) iters=${2:?}; shift 2 ;;
    -w) warmup=${2:?}; shift 2 ;;
    -a) algo=${2:?}; shift 2 ;;
    -B) build=${2:?}; shift 2 ;;
    -O) outdir=${2:?}; shift 2 ;;
    --prefix) prefix=${2:?}; shift 2 ;;
    --plot)
        plot=1
        if [ $# -ge 2 ] && [[ $2 == *.png ]]; then plot_png=$2; shift; fi
        shift ;;
    --quick) min=64K max=16M factor=4 iters=3 warmup=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
    esac
done
for h in $hosts_list; do
    [[ $h =~ ^[0-9]+$ ]] && ((h >= 2 && h <= 64)) || die "bad host count '$h' (2..64)"
done
for r in $rates; do
    [[ $r == 1gbit || $r == 10gbit || $r == none ]] || die "bad rate '$r' (1gbit, 10gbit, none)"
done
for s in "$min" "$max"; do
    [[ $s =~ ^[0-9]+[KMG]?$ ]] || die "bad size '$s' (bytes, with K, M or G)"
done
[[ $factor =~ ^[0-9]+$ ]] && ((factor >= 2)) || die "bad size factor '$factor' (integer >= 2)"
[[ $iters =~ ^[0-9]+$ ]] && ((iters >= 1)) || die "bad iteration count '$iters' (>= 1)"
[[ $warmup =~ ^[0-9]+$ ]] || die "bad warm-up count '$warmup' (>= 0)"
[[ $prefix =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{0,39}$ ]] || die "bad --prefix '$prefix'"
[[ $algo =~ ^(auto|ring|tree|rhd)$ ]] || die "bad algorithm '$algo' (auto ring tree rhd)"
[ "$(id -u)" -eq 0 ] || die "must run as root: the emulated hosts are network namespaces"
command -v mpicc >/dev/null && command -v mpirun >/dev/null ||
    die "mpicc and mpirun are needed (Debian: openmpi-bin libopenmpi-dev)"
if [ -n "$plot" ]; then
    command -v gnuplot >/dev/null || die "--plot needs gnuplot (Debian: gnuplot-nox)"
fi

# ---- build -------------------------------------------------------------------------
if [ ! -x "$build/pride-bench" ] || [ ! -x "$build/pride-run" ]; then
    cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    ninja -C "$build" -j2 pride-bench pride-run
fi
mkdir -p "$build/bench"
mpibench="$build/bench/mpi_allreduce_bench"
if [ ! -x "$mpibench" ] || [ "$repo/bench/mpi_allreduce_bench.c" -nt "$mpibench" ]; then
    mpicc -O2 -Wall -Wextra -Werror -o "$mpibench" "$repo/bench/mpi_allreduce_bench.c"
fi
outdir=${outdir:-$build/bench/cluster}
mkdir -p "$outdir/raw"
outdir=$(cd "$outdir" && pwd)
sweep=(-b "$min" -e "$max" -f "$factor" -n "$iters" -w "$warmup")
cluster="$repo/tools/pride-cluster"
hostsfile="/run/pride-cluster/$prefix.hosts"

# The benches run in the background (timed below) so that a signal reaches this script
# at once: it passes SIGTERM on to the bench (pride-run and mpirun end their ranks),
# and the EXIT trap deletes the cluster.
child=""
cleanup() {
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    "$cluster" down --prefix "$prefix" >/dev/null 2>&1 || true
    cg_remove
}
trap cleanup EXIT
exec 4>&2 # the script's stderr, for the trap (the bench's may be redirected meanwhile)
trap 'echo "cluster-compare.sh: interrupted; removing the cluster" >&4; exit 130' INT TERM HUP

line_rate() { # GB/s (1e9 B) of a tbf rate, empty for none
    case $1 in 1gbit) echo 0.125 ;; 10gbit) echo 1.25 ;; *) echo "" ;; esac
}

# CPU time of everything a bench starts, wherever it runs: each bench is put in a
# cgroup of its own (cgroup v1 cpuacct, else v2 cpu.stat), which its ranks, Open MPI's
# daemons (they daemonize, so a wait() would miss them) and their ranks inherit.
# Without a usable cgroup, the rusage of waited-for children stands in (it misses the
# ranks Open MPI starts in the other hosts).
cg_dir="" cg_kind=""
cg_init() {
    local d root
    if [ -f /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then
        d=/sys/fs/cgroup/cpuacct/cluster-compare-$$
        if mkdir "$d" 2>/dev/null; then cg_dir=$d cg_kind=v1; return; fi
    fi
    for root in /sys/fs/cgroup /sys/fs/cgroup/unified; do
        [ -f "$root/cgroup.controllers" ] || continue
        d=$root/cluster-compare-$$
        if mkdir "$d" 2>/dev/null; then
            [ -f "$d/cpu.stat" ] && { cg_dir=$d cg_kind=v2; return; }
            rmdir "$d" 2>/dev/null
        fi
    done
}
cg_seconds() { # CPU seconds used so far in the cgroup
    case $cg_kind in
        v1) awk '{ printf "%.3f", $1 / 1e9 }' "$cg_dir/cpuacct.usage" ;;
        v2) awk '$1 == "usage_usec" { printf "%.3f", $2 / 1e6 }' "$cg_dir/cpu.stat" ;;
        *) echo 0 ;;
    esac
}
cg_remove() {
    [ -n "$cg_dir" ] || return 0
    local i
    for i in 1 2 3 4 5 6 7 8 9 10; do # exiting processes leave it a moment later
        rmdir "$cg_dir" 2>/dev/null && return 0
        sleep 0.3
    done
    echo "cluster-compare.sh: could not remove the cgroup $cg_dir (processes left in it?)" >&2
}

cpu_ticks() { # "busy total" jiffies of the whole machine, from /proc/stat
    awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat
}

# Run a command in the background (in the cgroup), appending "real user sys
# machine_busy cgroup_cpu" to $1: wall and CPU seconds of the command and its waited-for
# children, the share of all cores busy (anyone's work) meanwhile, and the CPU seconds
# of everything the command started (the cgroup; 0 without one).
timed() {
    local tfile=$1; shift
    local TIMEFORMAT='%R %U %S' st=0 b0 t0 b1 t1 c0 c1
    read -r b0 t0 < <(cpu_ticks)
    c0=$(cg_seconds)
    { time {
        { [ -z "$cg_dir" ] || echo "$BASHPID" >"$cg_dir/cgroup.procs"; "$@"; } 2>&3 &
        child=$!
        wait "$child"
    }; } 3>&2 2>>"$tfile" || st=$?
    child=""
    read -r b1 t1 < <(cpu_ticks)
    c1=$(cg_seconds)
    awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" -v c="$(awk -v a="$c0" -v z="$c1" 'BEGIN { print z - a }')" \
        '{ l = $0 } END { printf "%s %.2f %.3f\n", l, (t > 0 ? b / t : 0), c }' \
        "$tfile" >"$tfile.tmp" && mv "$tfile.tmp" "$tfile"
    return "$st"
}

# run_pride and run_mpi end in exec: run in the background by timed, the bench
# itself is the child that a signal is passed to.
run_pride() { # hosts csv json
    local n=$1 csv=$2 json=$3 list i
    list=$(for ((i = 0; i < n; i++)); do printf '%s-h%d,' "$prefix" "$i"; done)
    exec "$build/pride-run" -n "$n" --netns "${list%,}" -- "$build/pride-bench" \
        -c allreduce -d float32 -o sum -a "$algo" "${sweep[@]}" --csv "$csv" --json "$json"
}

run_mpi() { # hosts csv json
    local n=$1 csv=$2 json=$3 hosts
    hosts=$(awk '{ printf "%s%s", sep, $2; sep = "," }' "$hostsfile")
    exec env NETNS_RSH_HOSTS="$hostsfile" ip netns exec "$prefix-h0" \
        mpirun --allow-run-as-root --oversubscribe -np "$n" --host "$hosts" \
        --mca plm_rsh_agent "$repo/bench/netns-rsh" --mca plm_rsh_no_tree_spawn 1 \
        --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include eth0 \
        --mca oob_tcp_if_include eth0 --mca mpi_yield_when_idle 1 \
        "$mpibench" "${sweep[@]}" --csv "$csv" --json "$json"
}

commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
ompi=$(mpirun --version 2>/dev/null | head -1)
results="$outdir/results.csv"
md="$outdir/results.md"
echo "hosts,rate,line_gbps,size,pride_time_us,pride_busbw_gbps,pride_frac,mpi_time_us,mpi_busbw_gbps,mpi_frac,pride_over_mpi,load1_pride,load1_mpi,pride_cpu_cores,mpi_cpu_cores,machine_busy_pride,machine_busy_mpi" >"$results"
{
    echo "# pride_allreduce vs MPI_Allreduce on an emulated cluster (float32 sum)"
    echo
    echo "- command: \`bench/cluster-compare.sh ${args[*]}\`"
    echo "- hosts: network namespaces on a bridge (tools/pride-cluster), each link shaped in both"
    echo "  directions with tc tbf (1gbit: burst 256kb, 10gbit: burst 2mb); one rank per host"
    echo "- pride $commit, algo $algo, transport tcp; $ompi (pml ob1, btl tcp on eth0,"
    echo "  mpi_yield_when_idle 1, started in the hosts by bench/netns-rsh)"
    echo "- machine: $(nproc) cores, $(uname -sr), $(date -u '+%Y-%m-%d %H:%M UTC'), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- time: largest per-rank mean over $iters iterations after $warmup warm-ups; busbw ="
    echo "  size/time * 2(P-1)/P (GB/s, 1e9 B); line = busbw / line rate; pride/MPI = busbw ratio"
    echo "  (> 1: pride faster). Sizes below the tbf burst can exceed the line rate."
} >"$md"

cg_init
if [ -n "$cg_dir" ]; then
    cpu_source="all processes of the run, cgroup $cg_kind"
else
    cpu_source="rusage of waited-for children: misses Open MPI's ranks in the other hosts"
fi
echo "- CPU use of each run: $cpu_source" >>"$md"

for rate in $rates; do
    line=$(line_rate "$rate")
    for n in $hosts_list; do
        echo "== $n hosts at $rate: building the cluster" >&2
        "$cluster" up "$n" --rate "$rate" --prefix "$prefix" >/dev/null
        tag="$n-$rate"
        rm -f "$outdir/raw/time-$tag-pride" "$outdir/raw/time-$tag-mpi"
        echo "== $n hosts at $rate: pride-bench" >&2
        l_pride=$(cut -d' ' -f1 /proc/loadavg)
        timed "$outdir/raw/time-$tag-pride" run_pride "$n" "$outdir/raw/pride-$tag.csv" \
            "$outdir/raw/pride-$tag.json" >"$outdir/raw/pride-$tag.log" ||
            { cat "$outdir/raw/pride-$tag.log" >&2; echo "cluster-compare.sh: pride-bench failed on $n hosts at $rate" >&2; exit 1; }
        echo "== $n hosts at $rate: MPI_Allreduce" >&2
        l_mpi=$(cut -d' ' -f1 /proc/loadavg)
        timed "$outdir/raw/time-$tag-mpi" run_mpi "$n" "$outdir/raw/mpi-$tag.csv" \
            "$outdir/raw/mpi-$tag.json" >"$outdir/raw/mpi-$tag.log" ||
            { cat "$outdir/raw/mpi-$tag.log" >&2; echo "cluster-compare.sh: mpirun failed on $n hosts at $rate" >&2; exit 1; }
        "$cluster" down --prefix "$prefix"
        # cores used on average = CPU seconds of the run (cgroup, else rusage) / wall time
        cores='END { printf "%.2f", ($5 > 0 ? $5 : $2 + $3) / $1 }'
        c_pride=$(awk "$cores" "$outdir/raw/time-$tag-pride")
        c_mpi=$(awk "$cores" "$outdir/raw/time-$tag-mpi")
        m_pride=$(awk 'END { print $4 }' "$outdir/raw/time-$tag-pride")
        m_mpi=$(awk 'END { print $4 }' "$outdir/raw/time-$tag-mpi")
        # join the two benches' CSV files on size (field 5; time 10, busbw 12)
        awk -F, -v n="$n" -v rate="$rate" -v line="$line" -v lp="$l_pride" -v lm="$l_mpi" \
            -v cp="$c_pride" -v cm="$c_mpi" -v mp="$m_pride" -v mm="$m_mpi" '
            FNR == 1 { next }
            NR == FNR { t[$5] = $10; b[$5] = $12; next }
            ($5 in t) {
                fp = line == "" ? "" : sprintf("%.3f", b[$5] / line)
                fm = line == "" ? "" : sprintf("%.3f", $12 / line)
                printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%.2f,%s,%s,%s,%s,%s,%s\n", n, rate, line, $5,
                       t[$5], b[$5], fp, $10, $12, fm, ($12 > 0 ? b[$5] / $12 : 0), lp, lm, cp, cm, mp, mm
            }' "$outdir/raw/pride-$tag.csv" "$outdir/raw/mpi-$tag.csv" >"$outdir/raw/join-$tag.csv"
        cat "$outdir/raw/join-$tag.csv" >>"$results"
        {
            echo
            echo "## $n hosts, $rate (line rate ${line:-unshaped} GB/s)"
            echo
            echo "load average (1 min) at start: pride $l_pride, MPI $l_mpi; cores used by the run"
            echo "(CPU seconds / wall seconds, $cpu_source): pride $c_pride, MPI $c_mpi, of $(nproc);"
            echo "share of all cores busy (anyone's work) meanwhile: $m_pride, $m_mpi"
            echo
            echo "| size | pride busbw (GB/s) | pride / line | MPI busbw (GB/s) | MPI / line | pride / MPI |"
            echo "|---:|---:|---:|---:|---:|---:|"
            awk -F, '{ printf "| %s | %.4f | %s | %.4f | %s | %.2f |\n", $4, $6, $7 == "" ? "-" : $7,
                       $9, $10 == "" ? "-" : $10, $11 }' "$outdir/raw/join-$tag.csv"
        } >>"$md"
        printf '\n%d hosts, %s (line rate %s GB/s); load %s / %s; cores used pride %s, MPI %s; machine busy %s / %s\n' \
            "$n" "$rate" "${line:-none}" "$l_pride" "$l_mpi" "$c_pride" "$c_mpi" "$m_pride" "$m_mpi"
        printf '%10s %12s %8s %12s %8s %10s\n' size "pride GB/s" "/line" "MPI GB/s" "/line" pride/MPI
        awk -F, '{ printf "%10s %12.4f %8s %12.4f %8s %10.2f\n", $4, $6, $7 == "" ? "-" : $7,
                   $9, $10 == "" ? "-" : $10, $11 }' "$outdir/raw/join-$tag.csv"
    done
done
{ echo; echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the times)"; } >>"$md"
awk -f "$repo/bench/cluster-summary.awk" "$results" >"$outdir/summary.md"
echo
echo "results: $results, $md; compact tables: $outdir/summary.md"
if [ -n "$plot" ]; then
    "$repo/bench/plot-cluster.sh" "$results" "${plot_png:-$outdir/allreduce-1gbit.png}"
fi
