# cluster-summary.awk: compact markdown tables from the results.csv of bench/cluster-compare.sh,
# one table per link rate with pride, Open MPI and their ratio per host count.
# usage: awk -f bench/cluster-summary.awk results.csv
BEGIN { FS = "," }
NR == 1 { next }
{
    key = $2 SUBSEP $1 SUBSEP $4
    if (!($2 in seenrate)) { seenrate[$2] = 1; rates[++nr] = $2 }
    if (!(($2 SUBSEP $1) in seenh)) { seenh[$2 SUBSEP $1] = 1; nh[$2]++; hosts[$2, nh[$2]] = $1 }
    if (!(($2 SUBSEP $4) in seens)) { seens[$2 SUBSEP $4] = 1; ns[$2]++; sizes[$2, ns[$2]] = $4 }
    pb[key] = $6; pf[key] = $7; mb[key] = $9; mf[key] = $10; ratio[key] = $11
    if ($12 > load[$2]) load[$2] = $12
    if ($13 > load[$2]) load[$2] = $13
    line[$2] = $3
}
function human(b) {
    if (b >= 1048576) return (b / 1048576) " MiB"
    if (b >= 1024) return (b / 1024) " KiB"
    return b " B"
}
function cell(b, f) { return f == "" ? sprintf("%.3f", b) : sprintf("%.3f (%.2f)", b, f) }
END {
    for (i = 1; i <= nr; i++) {
        r = rates[i]
        printf "%s%s, line rate %s GB/s; busbw in GB/s (fraction of line rate); 1-min load average up to %s\n\n",
               (i > 1 ? "\n" : ""), r, (line[r] == "" ? "unshaped" : line[r]), load[r]
        hdr = "| size |"; sep = "|---:|"
        for (h = 1; h <= nh[r]; h++) {
            hdr = hdr sprintf(" %s hosts pride | %s hosts Open MPI | pride/MPI |", hosts[r, h], hosts[r, h])
            sep = sep "---:|---:|---:|"
        }
        print hdr; print sep
        for (s = 1; s <= ns[r]; s++) {
            row = "| " human(sizes[r, s]) " |"
            for (h = 1; h <= nh[r]; h++) {
                k = r SUBSEP hosts[r, h] SUBSEP sizes[r, s]
                row = row (k in pb ? sprintf(" %s | %s | %.2f |", cell(pb[k], pf[k]), cell(mb[k], mf[k]), ratio[k]) : " | | |")
            }
            print row
        }
    }
}
