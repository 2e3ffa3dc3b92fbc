#!/usr/bin/env bash
# Install what pride needs on Debian 12 (run as root, or with sudo available).
# Build: cmake, ninja, a C compiler, CMocka; optional backends: libfabric, libibverbs,
# librdmacm, hiredis, Open MPI (pride_mpi, mpirun tests); doxygen (the API reference
# test); the training data set and the comparison / cluster tools (iproute2, nftables,
# gnuplot for bench/plot-cluster.sh).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libcmocka-dev zlib1g-dev
      libfabric-dev libfabric-bin libibverbs-dev librdmacm-dev libhiredis-dev redis-server
      openmpi-bin libopenmpi-dev doxygen dataset-fashion-mnist iproute2 nftables clang libclang-rt-14-dev
      gnuplot-nox)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
