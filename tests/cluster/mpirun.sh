#!/usr/bin/env bash
# cluster_mpirun: Open MPI's mpirun across emulated hosts (tools/pride-cluster), its
# daemons started inside the hosts' network namespaces by bench/netns-rsh.
#
# The one idea: build a 3-host cluster under a prefix unique to this process, run
# mpirun inside the first host with one rank per host address, and check that each
# rank ran in a different host (each reports its own eth0 address) and that an
# MPI_Allreduce across the shaped links gives the right sums (tests/cluster/
# mpi_netns_check.c). Also: the agent refuses an unknown host with a clear message,
# and mpirun given such a host fails instead of hanging; and pride's own ranks (mpi_env,
# mpi_boot from the build, named by PRIDE_MPI_ENV / PRIDE_MPI_BOOT) run across the hosts
# under the same mpirun, with checked collectives. The cluster is deleted on
# exit, pass or fail. Exit 77 (skipped, with the reason) only without root, network
# namespaces or Open MPI.
set -u -o pipefail

src=${PRIDE_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cluster="$src/tools/pride-cluster"
agent="$src/bench/netns-rsh"
prefix="clmpi$$"
nhosts=3
fails=0

skip() { echo "skipped: $*"; exit 77; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
pass() { echo "ok: $*"; }

[ "$(id -u)" -eq 0 ] || skip "network namespaces need root"
command -v ip >/dev/null || skip "the ip command (iproute2) is absent"
command -v mpirun >/dev/null || skip "mpirun (Open MPI) is not installed"
command -v mpicc >/dev/null || skip "mpicc (libopenmpi-dev) is not installed"
ip netns add "$prefix-probe" 2>/dev/null || skip "network namespaces cannot be made here"
ip netns del "$prefix-probe"

tmp=$(mktemp -d /tmp/cluster-mpirun.XXXXXX)
cleanup() {
    "$cluster" down --prefix "$prefix" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

mpicc -O2 -Wall -Wextra -Werror -o "$tmp/mpi_netns_check" "$src/tests/cluster/mpi_netns_check.c" ||
    { echo "FAIL: mpicc could not build mpi_netns_check"; exit 1; }
"$cluster" up "$nhosts" --rate 1gbit --prefix "$prefix" >"$tmp/up.log" 2>&1 ||
    { cat "$tmp/up.log"; echo "FAIL: pride-cluster up"; exit 1; }
hostsfile="/run/pride-cluster/$prefix.hosts"
addrs=$(awk '{ print $2 }' "$hostsfile")
hostlist=$(echo $addrs | tr ' ' ',')

run_mpirun() { # HOSTLIST NP ARGS...
    local hl=$1 np=$2
    shift 2
    NETNS_RSH_HOSTS=$hostsfile timeout 120 ip netns exec "$prefix-h0" \
        mpirun --allow-run-as-root --oversubscribe -np "$np" --host "$hl" \
        --mca plm_rsh_agent "$agent" --mca plm_rsh_no_tree_spawn 1 \
        --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include eth0 \
        --mca oob_tcp_if_include eth0 --mca mpi_yield_when_idle 1 "$@"
}

# 1. one rank per host, allreduce checked
out=$(run_mpirun "$hostlist" "$nhosts" "$tmp/mpi_netns_check" eth0 262144 2>&1)
st=$?
echo "$out" | sed 's/^/  | /'
if [ $st -ne 0 ]; then
    fail "mpirun across $nhosts hosts exited with $st"
else
    got=$(echo "$out" | awk '$1 == "rank" { print $3 }' | sort)
    want=$(echo "$addrs" | sort)
    [ "$got" = "$want" ] && pass "each rank ran in its own host ($(echo $got))" ||
        fail "ranks reported addresses '$(echo $got)', want '$(echo $want)'"
    echo "$out" | grep -qx 'allreduce ok' && pass "MPI_Allreduce across the hosts is right" ||
        fail "MPI_Allreduce result not confirmed"
fi

# 2. ranks by namespace name instead of address, two per host (oversubscribed)
nslist=$(awk '{ printf "%s%s:2", sep, $1; sep = "," }' "$hostsfile")
out=$(run_mpirun "$nslist" $((2 * nhosts)) "$tmp/mpi_netns_check" eth0 1000 2>&1)
st=$?
if [ $st -eq 0 ] && echo "$out" | grep -qx 'allreduce ok' &&
    [ "$(echo "$out" | awk '$1 == "rank" { print $3 }' | sort -u)" = "$(echo "$addrs" | sort)" ]; then
    pass "hosts named by namespace, 2 ranks each"
else
    echo "$out" | sed 's/^/  | /'
    fail "hosts named by namespace (exit $st)"
fi

# 3. the agent refuses what it cannot map, with exit 255 (as ssh) and a message
msg=$(NETNS_RSH_HOSTS=$hostsfile "$agent" 10.255.255.254 true 2>&1)
st=$?
[ $st -eq 255 ] && [[ $msg == *"host '10.255.255.254' is neither in"* ]] &&
    pass "agent: unknown host refused ($msg)" || fail "agent: unknown host gave exit $st, '$msg'"
msg=$("$agent" "$prefix-h1" 2>&1)
st=$?
[ $st -eq 255 ] && [[ $msg == *"no command"* ]] && pass "agent: no command refused" ||
    fail "agent: no command gave exit $st, '$msg'"
msg=$(NETNS_RSH_HOSTS=$tmp/absent "$agent" "$prefix-h1" true 2>&1)
st=$?
[ $st -eq 255 ] && [[ $msg == *"cannot read"* ]] && pass "agent: unreadable hosts file refused" ||
    fail "agent: unreadable hosts file gave exit $st, '$msg'"
got=$(NETNS_RSH_HOSTS=$hostsfile "$agent" -x "$(sed -n 2p "$hostsfile" | cut -d' ' -f2)" \
    'ip -4 -br addr show eth0 | awk "{ print \$3 }"' 2>&1)
[ "$got" = "$(sed -n 2p "$hostsfile" | cut -d' ' -f2)/24" ] && pass "agent: runs the command in the host" ||
    fail "agent: command in host 2 printed '$got'"

# 4. mpirun with a host outside the cluster fails (not hangs) and names the problem
out=$(run_mpirun "$(sed -n 1p "$hostsfile" | cut -d' ' -f2),10.255.255.254" 2 "$tmp/mpi_netns_check" 2>&1)
st=$?
if [ $st -ne 0 ] && [ $st -ne 124 ] && [[ $out == *"10.255.255.254"* ]]; then
    pass "mpirun with an unknown host failed with exit $st"
else
    echo "$out" | sed 's/^/  | /'
    fail "mpirun with an unknown host: exit $st (124 = hung until the timeout)"
fi

# 5. pride's ranks, one per host, started by mpirun: mpi_env finds rank and size in
#    OMPI_COMM_WORLD_* and its store on host 0 (rank 0 serves it); mpi_boot starts pride
#    over MPI_COMM_WORLD with pride_mpi. pride binds eth0, so its traffic crosses the
#    bridge. Each rank prints "rank R of N: ... ok" only when its checks passed.
pride_ranks() { # TAG OUT STATUS: every rank's line, once, and exit status 0
    local tag=$1 out=$2 st=$3 r missing=""
    for ((r = 0; r < nhosts; r++)); do
        [ "$(echo "$out" | grep -c "^rank $r of $nhosts: .* ok\$")" -eq 1 ] || missing="$missing $r"
    done
    if [ $st -eq 0 ] && [ -z "$missing" ]; then
        pass "$tag"
    else
        echo "$out" | sed 's/^/  | /'
        fail "$tag: exit $st, ranks without their line:${missing:- none}"
    fi
}
h0=$(sed -n 1p "$hostsfile" | cut -d' ' -f2)
if [ -n "${PRIDE_MPI_ENV:-}" ]; then
    out=$(run_mpirun "$hostlist" "$nhosts" -x PRIDE_STORE="tcp:$h0:$((20000 + $$ % 20000))" \
        -x PRIDE_IFNAME=eth0 -x PRIDE_JOB="clmpi$$" "$PRIDE_MPI_ENV" 2>&1)
    pride_ranks "pride ranks across the hosts under mpirun (OMPI_COMM_WORLD_*, store on host 0)" \
        "$out" $?
else
    echo "skipped: PRIDE_MPI_ENV (the build's mpi_env) is not set"
fi
if [ -n "${PRIDE_MPI_BOOT:-}" ]; then
    asan=()
    [ -n "${PRIDE_MPI_BOOT_ASAN:-}" ] && asan=(-x ASAN_OPTIONS="$PRIDE_MPI_BOOT_ASAN")
    out=$(run_mpirun "$hostlist" "$nhosts" -x PRIDE_IFNAME=eth0 "${asan[@]}" "$PRIDE_MPI_BOOT" 2>&1)
    pride_ranks "pride started over MPI_COMM_WORLD across the hosts (pride_mpi)" "$out" $?
else
    echo "skipped: PRIDE_MPI_BOOT is not set (pride_mpi is built only where CMake finds MPI)"
fi

[ $fails -eq 0 ] && { echo "cluster_mpirun: all passed"; exit 0; }
echo "cluster_mpirun: $fails failed"
exit 1
