#!/usr/bin/env bash
# cluster_compare_usage: bench/cluster-compare.sh, bench/plot-cluster.sh and
# bench/train-table.sh refuse bad input with exit 2 and a message naming it (before
# building, training or touching namespaces), and plot-cluster.sh turns a results.csv
# into a PNG.
#
# The one idea: every case runs the script and checks both its exit status and that
# its message names the bad value. Nothing here needs root; the PNG case needs gnuplot
# and says so when it is absent.
set -u -o pipefail

src=${PRIDE_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
compare="$src/bench/cluster-compare.sh"
plot="$src/bench/plot-cluster.sh"
fails=0
tmp=$(mktemp -d /tmp/cluster-compare-usage.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# expect STATUS TEXT COMMAND...: the command exits STATUS and its output contains TEXT
expect() {
    local want=$1 text=$2 out st
    shift 2
    out=$("$@" 2>&1)
    st=$?
    if [ "$st" -eq "$want" ] && [[ $out == *"$text"* ]]; then
        echo "ok: ${*##*/} -> $st"
    else
        echo "FAIL: '$*' exited $st (want $want), output: $out"
        fails=$((fails + 1))
    fi
}

expect 0 "usage: bench/cluster-compare.sh" "$compare" --help
expect 2 "unknown option '--bogus'" "$compare" --bogus
expect 2 "bad host count '1'" "$compare" -H "4 1"
expect 2 "bad host count 'x'" "$compare" -H x
expect 2 "bad rate '100mbit'" "$compare" -r "1gbit 100mbit"
expect 2 "bad --prefix 'a b'" "$compare" --prefix "a b"
expect 2 "bad algorithm 'fast'" "$compare" -a fast
expect 2 "bad size '64Q'" "$compare" -b 64Q
expect 2 "bad size factor '1'" "$compare" -f 1
expect 2 "bad iteration count '0'" "$compare" -n 0
expect 2 "bad warm-up count '-1'" "$compare" -w -1
expect 2 "-n needs a value" "$compare" -n

expect 2 "usage: plot-cluster.sh" "$plot"
expect 2 "cannot read '$tmp/absent.csv'" "$plot" "$tmp/absent.csv" "$tmp/out.png"
echo "size,time" >"$tmp/other.csv"
expect 2 "is not a cluster-compare.sh results.csv" "$plot" "$tmp/other.csv" "$tmp/out.png"

cat >"$tmp/results.csv" <<'EOF'
hosts,rate,line_gbps,size,pride_time_us,pride_busbw_gbps,pride_frac,mpi_time_us,mpi_busbw_gbps,mpi_frac,pride_over_mpi,load1_pride,load1_mpi,pride_cpu_cores,mpi_cpu_cores,machine_busy_pride,machine_busy_mpi
4,1gbit,0.125,65536,800,0.120,0.960,1600,0.060,0.480,2.00,1.0,1.1,0.5,0.4,0.5,0.5
4,1gbit,0.125,131072,1600,0.121,0.968,3200,0.061,0.488,1.98,1.0,1.1,0.5,0.4,0.5,0.5
EOF
expect 2 "no rows at rate 10gbit" "$plot" "$tmp/results.csv" "$tmp/out.png" 10gbit
if command -v gnuplot >/dev/null; then
    expect 0 "plot: $tmp/out.png" "$plot" "$tmp/results.csv" "$tmp/out.png"
    if [ "$(head -c 8 "$tmp/out.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
        echo "ok: the plot is a PNG"
    else
        echo "FAIL: $tmp/out.png is not a PNG"
        fails=$((fails + 1))
    fi
else
    echo "skipped (only the PNG case): gnuplot is not installed (Debian: gnuplot-nox)"
fi

# bench/train-table.sh: the same, before any training starts
train="$src/bench/train-table.sh"
expect 0 "usage: bench/train-table.sh" "$train" --help
expect 2 "unknown option '--bogus'" "$train" --bogus
expect 2 "bad number 'x'" "$train" -n "4 x"
expect 2 "bad number '0'" "$train" -t 0
expect 2 "no pride-train in $tmp" "$train" -B "$tmp"

[ $fails -eq 0 ] && { echo "cluster_compare_usage: all passed"; exit 0; }
echo "cluster_compare_usage: $fails failed"
exit 1
