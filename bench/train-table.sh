#!/usr/bin/env bash
# train-table.sh: the optimizer comparison of README's training table, in one command.
#
# For every optimizer configuration of the table (G-AdamW, G-Lion, D-Lion MaVo and Avg,
# Lion Cub sign1 / l1 / l1-ternary with and without momentum sync):
#   accuracy  pride-train on Fashion-MNIST, the small MLP (width 256, depth 2), for each
#             rank count of -n and each seed of -s: test accuracy after the last epoch
#             and bits per parameter per step (bytes_sent x 8 / (parameters x steps));
#   step time the 10M-parameter MLP (width 2048, depth 3), 4 ranks, --max-steps of -t:
#             ms per step on loopback, and on 4 emulated hosts with 1 Gbit/s links
#             (tools/pride-cluster; needs root, skipped with a message otherwise).
# Batch 32 per rank everywhere. Prints a markdown table and writes every CSV under -o.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/train-table.sh [options]
  -n "N1 N2 .."   rank counts for the accuracy columns   (default "4 8")
  -s "S1 S2 .."   seeds, accuracy is their mean            (default "1")
  -e EPOCHS       epochs of the accuracy runs              (default 3)
  -t STEPS        steps of each step-time run              (default 50)
  -B DIR          pride build directory                    (default <repo>/build)
  -o DIR          CSVs and the table                       (default DIR/bench/train)
  --no-accuracy   only the step-time columns
  --no-cluster    no emulated hosts (loopback step time only)
EOF
}

die() { echo "train-table.sh: $*" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ranks="4 8" seeds="1" epochs=3 steps=50 build="$repo/build" out="" acc=1 cluster=1
while [ $# -gt 0 ]; do
    case "$1" in
    -n) ranks=${2:?}; shift 2 ;;
    -s) seeds=${2:?}; shift 2 ;;
    -e) epochs=${2:?}; shift 2 ;;
    -t) steps=${2:?}; shift 2 ;;
    -B) build=${2:?}; shift 2 ;;
    -o) out=${2:?}; shift 2 ;;
    --no-accuracy) acc=0; shift ;;
    --no-cluster) cluster=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
    esac
done
for v in $ranks $seeds $epochs $steps; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "bad number '$v'"
done
[ -x "$build/pride-train" ] && [ -x "$build/pride-run" ] ||
    die "no pride-train in $build (build first: cmake -S . -B build -G Ninja && cmake --build build)"
out=${out:-$build/bench/train}
mkdir -p "$out"

# name | pride-train options
configs=(
    "G-AdamW|--optimizer global-adamw"
    "G-Lion|--optimizer global-lion"
    "D-Lion MaVo|--optimizer dlion-mavo"
    "D-Lion Avg|--optimizer dlion-avg"
    "Lion Cub sign1|--optimizer lioncub --quant sign1"
    "Lion Cub sign1 + every:10|--optimizer lioncub --quant sign1 --momentum-sync every:10"
    "Lion Cub sign1 + selective|--optimizer lioncub --quant sign1 --momentum-sync selective"
    "Lion Cub l1|--optimizer lioncub --quant l1"
    "Lion Cub l1 + every:10|--optimizer lioncub --quant l1 --momentum-sync every:10"
    "Lion Cub l1-ternary + every:10|--optimizer lioncub --quant l1-ternary --momentum-sync every:10"
)
small_params=269322   # 784*256+256 + 256*256+256 + 256*10+10
big_params=10020874   # 784*2048+2048 + 2*(2048*2048+2048) + 2048*10+10
big="--width 2048 --depth 3 --max-steps $steps"

prefix="tt$$"
cleanup() { [ $cluster -eq 1 ] && "$repo/tools/pride-cluster" down --prefix "$prefix" >/dev/null 2>&1 || true; }
trap cleanup EXIT
if [ $cluster -eq 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "train-table.sh: not root, so no emulated hosts: the 1 Gbit/s column is skipped" >&2
        cluster=0
    elif ! "$repo/tools/pride-cluster" up 4 --rate 1gbit --prefix "$prefix" >"$out/cluster.log" 2>&1; then
        cat "$out/cluster.log" >&2
        die "tools/pride-cluster up failed"
    fi
fi
netns="$prefix-h0,$prefix-h1,$prefix-h2,$prefix-h3"

# run CSV N [pride-run options] -- pride-train options: fails loudly
run() {
    local csv=$1 n=$2
    shift 2
    local pre=()
    while [ "$1" != "--" ]; do pre+=("$1"); shift; done
    shift
    if ! "$build/pride-run" -n "$n" "${pre[@]}" "$build/pride-train" "$@" --csv "$csv" \
        >"$csv.log" 2>&1; then
        cat "$csv.log" >&2
        die "pride-train failed: -n $n ${pre[*]} $*"
    fi
}

# the last row's test accuracy (%), and bits per parameter per step over all rows
last_acc() { awk -F, 'NR > 1 { a = $3 } END { printf "%.2f", 100 * a }' "$1"; }
bits() { # CSV PARAMS STEPS
    awk -F, -v p="$2" -v s="$3" 'NR > 1 { b += $4 } END { printf "%.2f", b * 8 / (p * s) }' "$1"
}
mean() { echo "$@" | awk '{ for (i = 1; i <= NF; i++) t += $i; printf "%.2f", t / NF }'; }
step_ms() { awk -F, 'NR > 1 { t = $6 } END { printf "%.0f", 1000 * t }' "$1"; }

header="| optimizer |"
sep="|---|"
if [ $acc -eq 1 ]; then
    for n in $ranks; do
        header="$header test acc N=$n (%) | bits/param/step N=$n |"
        sep="$sep---:|---:|"
    done
fi
header="$header ms/step loopback, 10M params |"
sep="$sep---:|"
if [ $cluster -eq 1 ]; then
    header="$header ms/step 1 Gbit/s hosts, 10M params |"
    sep="$sep---:|"
fi
table=("$header" "$sep")

for c in "${configs[@]}"; do
    name=${c%%|*}
    read -r -a opts <<<"${c#*|}"
    tag=$(echo "$name" | tr -c 'A-Za-z0-9\n' '-')
    row="| $name |"
    if [ $acc -eq 1 ]; then
        for n in $ranks; do
            accs="" bitss=""
            per_epoch=$((60000 / (32 * n)))
            for s in $seeds; do
                csv="$out/$tag-n$n-s$s.csv"
                echo "== $name, $n ranks, seed $s" >&2
                run "$csv" "$n" -- "${opts[@]}" --epochs "$epochs" --seed "$s"
                accs="$accs $(last_acc "$csv")"
                bitss="$bitss $(bits "$csv" $small_params $((per_epoch * epochs)))"
            done
            row="$row $(mean $accs) | $(mean $bitss) |"
        done
    fi
    echo "== $name, step time on loopback" >&2
    csv="$out/$tag-loopback.csv"
    run "$csv" 4 -- "${opts[@]}" $big
    row="$row $(step_ms "$csv") |"
    if [ $cluster -eq 1 ]; then
        echo "== $name, step time on 4 hosts at 1 Gbit/s" >&2
        csv="$out/$tag-1gbit.csv"
        run "$csv" 4 --netns "$netns" -- "${opts[@]}" $big
        row="$row $(step_ms "$csv") |"
    fi
    table+=("$row")
done

{
    echo "# pride-train: optimizers compared"
    echo
    echo "- command: \`bench/train-table.sh -n \"$ranks\" -s \"$seeds\" -e $epochs -t $steps\`"
    echo "- pride $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown); batch 32 per rank;" \
        "accuracy: width 256, depth 2 ($small_params parameters), $epochs epochs, mean over seeds $seeds;" \
        "step time: width 2048, depth 3 ($big_params parameters), 4 ranks, $steps steps"
    echo "- machine: $(nproc) cores, $(uname -sr), $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    printf '%s\n' "${table[@]}"
} | tee "$out/table.md"
