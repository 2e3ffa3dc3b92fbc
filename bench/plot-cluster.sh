#!/usr/bin/env bash
# plot-cluster.sh: draw allreduce busbw against size for pride and Open MPI from the
# results.csv of bench/cluster-compare.sh, one pair of curves per host count, with the
# line rate drawn, as a PNG (gnuplot, pngcairo terminal).
#
# usage: bench/plot-cluster.sh RESULTS.csv OUT.png [RATE]     (RATE default 1gbit)
set -euo pipefail

die() { echo "plot-cluster.sh: $*" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || die "usage: plot-cluster.sh RESULTS.csv OUT.png [RATE]"
csv=$1 png=$2 rate=${3:-1gbit}
[ -r "$csv" ] || die "cannot read '$csv'"
command -v gnuplot >/dev/null || die "gnuplot is needed (Debian: gnuplot-nox)"
head -1 "$csv" | grep -q '^hosts,rate,line_gbps,size,' || die "'$csv' is not a cluster-compare.sh results.csv"

tmp=$(mktemp -d /tmp/plot-cluster.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# one file per host count: size pride_busbw mpi_busbw
awk -F, -v rate="$rate" -v dir="$tmp" 'NR > 1 && $2 == rate {
    print $4, $6, $9 > (dir "/h" $1 ".dat"); line = $3; hosts[$1] = 1
    if ($12 > load) load = $12; if ($13 > load) load = $13 }
    END { for (h in hosts) print h > (dir "/hosts"); print line > (dir "/line")
          print load > (dir "/load") }' "$csv"
[ -s "$tmp/hosts" ] || die "no rows at rate $rate in '$csv'"
line=$(cat "$tmp/line") load=$(cat "$tmp/load")

plots=()
k=0
for h in $(sort -n "$tmp/hosts"); do
    plots+=("'$tmp/h$h.dat' using 1:2 with linespoints lw 2 pt 7 lc $((k + 1)) title 'pride, $h hosts'")
    plots+=("'$tmp/h$h.dat' using 1:3 with linespoints lw 2 pt 5 dt 2 lc $((k + 1)) title 'Open MPI, $h hosts'")
    k=$((k + 1))
done
[ -n "$line" ] && plots+=("$line with lines lw 2 dt 3 lc rgb 'black' title 'line rate ($line GB/s)'")
joined=$(IFS=,; echo "${plots[*]}")

gnuplot <<EOF
set terminal pngcairo size 900,600 font ",11"
set output '$png'
set title "float32 allreduce on emulated hosts, links shaped to $rate (tc tbf)\\nmachine shared with other work: 1-min load average up to $load during the runs"
set logscale x 2
set format x "%.0b%BB"
set xlabel "message size (bytes)"
set ylabel "bus bandwidth (GB/s, 1e9 B)"
set yrange [0:*]
set key below horizontal
set grid
plot $joined
EOF
echo "plot: $png"
