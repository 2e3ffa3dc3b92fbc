#!/bin/sh
# install.sh: one step of the install test (tests/tools/test_install.c), run as
#   install.sh STEP DIR
# with PRIDE_TOOLS_DIR (the build directory) and PRIDE_SOURCE_DIR set. DIR/prefix is
# the installed tree, DIR/work holds the out-of-tree example builds. Steps:
#   install     cmake --install the build into DIR/prefix and check the files it must hold
#   cmake-c     the C examples (example.c, lioncub_loop.c) through find_package(pride),
#               run with pride-run -n 2
#   pkgconfig-c the C example through `pkg-config --cflags --libs pride`, run likewise
#   static-c    the C example linked with pride::pride_static: no libpride.so needed
#   cxx         the C++ example through find_package(pride), run likewise
#   fortran     the Fortran example through find_package(pride) (77: no gfortran)
#   version     find_package(pride 99) must fail: the version file rejects it
#   mpi         pride_mpi: tests/mpi/mpi_boot.c built through find_package(pride
#               COMPONENTS mpi) and through `pkg-config pride-mpi`, each run under
#               mpirun -np 2 (77: pride built without MPI, or no mpirun)
# Exit status 0 on success, 77 to skip, anything else with a reason on stderr.
# A sanitizer build is skipped: its libpride.so needs the ASan runtime loaded first,
# which a plain consumer program does not do.
set -u
step=$1
dir=$2
prefix=$dir/prefix
work=$dir/work
ex=$PRIDE_SOURCE_DIR/examples

fail() {
    echo "install.sh $step: $*" >&2
    exit 1
}

# The library directory: lib, or lib/<multiarch> where GNUInstallDirs chose it.
libdir() {
    pc=$(find "$prefix" -name pride.pc -path '*/pkgconfig/*' | head -n 1)
    [ -n "$pc" ] || fail "no pride.pc under $prefix"
    dirname "$(dirname "$pc")"
}

# configure and build examples/$1 against the prefix into $work/$2
cmake_build() {
    cmake -S "$ex/$1" -B "$work/$2" -DCMAKE_PREFIX_PATH="$prefix" >"$work/$2.log" 2>&1 &&
        cmake --build "$work/$2" >>"$work/$2.log" 2>&1 ||
        { cat "$work/$2.log" >&2; fail "building examples/$1 with find_package failed"; }
}

# run $1 under the installed pride-run with 2 ranks; each rank must print its line
# containing $2 and "ok"
run2() {
    out=$work/run-$step.out
    LD_LIBRARY_PATH=$(libdir) "$prefix/bin/pride-run" -n 2 "$1" >"$out" 2>&1 ||
        { cat "$out" >&2; fail "$1 failed under pride-run"; }
    for r in 0 1; do
        grep -q "^\[$r\] rank $r of 2: $2.* ok\$" "$out" ||
            { cat "$out" >&2; fail "no result line from rank $r"; }
    done
    cat "$out"
}

if grep -q '^PRIDE_SANITIZE:BOOL=ON$' "$PRIDE_TOOLS_DIR/CMakeCache.txt"; then
    echo "sanitizer build: plain consumers cannot load its libpride.so: skipped"
    exit 77
fi
mkdir -p "$work" || fail "cannot create $work"
case $step in
install)
    cmake --install "$PRIDE_TOOLS_DIR" --prefix "$prefix" >"$dir/install.log" 2>&1 ||
        { cat "$dir/install.log" >&2; fail "cmake --install failed"; }
    lib=$(libdir)
    for f in include/pride/pride.h include/pride/optimizer.h bin/pride-run bin/pride-bench \
        bin/pride-perf bin/pride-train share/man/man1/pride-run.1 share/man/man1/pride-bench.1 \
        share/man/man1/pride-perf.1 share/man/man1/pride-train.1; do
        [ -e "$prefix/$f" ] || fail "$f is not installed"
    done
    for f in libpride.a libpride.so libpride.so.0 pkgconfig/pride.pc cmake/pride/prideConfig.cmake \
        cmake/pride/prideConfigVersion.cmake cmake/pride/prideTargets.cmake; do
        [ -e "$lib/$f" ] || fail "$lib/$f is not installed"
    done
    objdump -p "$lib/libpride.so" | grep -q 'SONAME *libpride\.so\.0$' ||
        fail "libpride.so has no SONAME libpride.so.0"
    ;;
cmake-c)
    cmake_build c c
    run2 "$work/c/pride_example_c" "allreduce 3 vote 00000000ffffffff lion 0.99"
    run2 "$work/c/lioncub_loop" "lioncub l1 every:10"
    ;;
pkgconfig-c)
    PKG_CONFIG_PATH=$(libdir)/pkgconfig
    export PKG_CONFIG_PATH
    flags=$(pkg-config --cflags --libs pride) || fail "pkg-config does not find pride"
    # shellcheck disable=SC2086
    cc -Wall -Wextra -Werror -o "$work/pc_c" "$ex/c/example.c" $flags -lm ||
        fail "cc with pkg-config flags ($flags) failed"
    run2 "$work/pc_c" "allreduce 3 vote 00000000ffffffff lion 0.99"
    ;;
static-c)
    mkdir -p "$work/static-src"
    printf '%s\n' 'cmake_minimum_required(VERSION 3.18)' 'project(static_c LANGUAGES C)' \
        'find_package(pride 0.1 REQUIRED)' "add_executable(static_c $ex/c/example.c)" \
        'target_link_libraries(static_c PRIVATE pride::pride_static m)' \
        >"$work/static-src/CMakeLists.txt"
    cmake -S "$work/static-src" -B "$work/static" -DCMAKE_PREFIX_PATH="$prefix" >"$work/static.log" 2>&1 &&
        cmake --build "$work/static" >>"$work/static.log" 2>&1 ||
        { cat "$work/static.log" >&2; fail "building with pride::pride_static failed"; }
    if ldd "$work/static/static_c" | grep -q libpride; then
        fail "the static_c program needs libpride.so"
    fi
    run2 "$work/static/static_c" "allreduce 3 vote 00000000ffffffff lion 0.99"
    ;;
cxx)
    command -v c++ >/dev/null || { echo "no C++ compiler: skipped"; exit 77; }
    cmake_build cxx cxx
    run2 "$work/cxx/pride_example_cxx" "C++ allreduce 3 vote 00000000ffffffff lion 0.99"
    ;;
fortran)
    command -v gfortran >/dev/null || { echo "gfortran is not installed: skipped"; exit 77; }
    cmake_build fortran fortran
    run2 "$work/fortran/pride_example_fortran" "Fortran allreduce 3.0"
    ;;
version)
    mkdir -p "$work/v99"
    printf 'cmake_minimum_required(VERSION 3.18)\nproject(v LANGUAGES C)\nfind_package(pride 99 REQUIRED)\n' \
        >"$work/v99/CMakeLists.txt"
    if cmake -S "$work/v99" -B "$work/v99/build" -DCMAKE_PREFIX_PATH="$prefix" >"$work/v99.log" 2>&1; then
        fail "find_package(pride 99) succeeded against version 0.1"
    fi
    grep -q 'version: 0.1.0' "$work/v99.log" || { cat "$work/v99.log" >&2; fail "wrong failure"; }
    ;;
mpi)
    lib=$(libdir)
    [ -e "$lib/pkgconfig/pride-mpi.pc" ] || { echo "pride was built without MPI: skipped"; exit 77; }
    command -v mpirun >/dev/null || { echo "mpirun is not installed: skipped"; exit 77; }
    for f in "$prefix/include/pride/mpi.h" "$lib/libpride_mpi.so.0" "$lib/libpride_mpi.a" \
        "$lib/cmake/pride/pride_mpiTargets.cmake"; do
        [ -e "$f" ] || fail "$f is not installed"
    done
    mkdir -p "$work/mpi-src"
    printf '%s\n' 'cmake_minimum_required(VERSION 3.18)' 'project(mpi_c LANGUAGES C)' \
        'find_package(pride 0.1 REQUIRED COMPONENTS mpi)' \
        "add_executable(mpi_boot $PRIDE_SOURCE_DIR/tests/mpi/mpi_boot.c)" \
        'target_link_libraries(mpi_boot PRIVATE pride::pride_mpi)' >"$work/mpi-src/CMakeLists.txt"
    cmake -S "$work/mpi-src" -B "$work/mpi" -DCMAKE_PREFIX_PATH="$prefix" >"$work/mpi.log" 2>&1 &&
        cmake --build "$work/mpi" >>"$work/mpi.log" 2>&1 ||
        { cat "$work/mpi.log" >&2; fail "building with pride::pride_mpi failed"; }
    flags=$(PKG_CONFIG_PATH=$lib/pkgconfig pkg-config --cflags --libs pride-mpi) ||
        fail "pkg-config does not find pride-mpi"
    # shellcheck disable=SC2086
    cc -Wall -Wextra -Werror -o "$work/pc_mpi" "$PRIDE_SOURCE_DIR/tests/mpi/mpi_boot.c" $flags ||
        fail "cc with pkg-config pride-mpi flags ($flags) failed"
    root=""
    [ "$(id -u)" -ne 0 ] || root=--allow-run-as-root
    for prog in "$work/mpi/mpi_boot" "$work/pc_mpi"; do
        out=$work/run-mpi.out
        LD_LIBRARY_PATH=$lib timeout 300 mpirun $root --oversubscribe -np 2 --mca pml ob1 \
            --mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
            -x LD_LIBRARY_PATH "$prog" >"$out" 2>&1 || { cat "$out" >&2; fail "$prog failed under mpirun"; }
        for r in 0 1; do
            grep -q "^rank $r of 2: pride_mpi world ok.* ok\$" "$out" ||
                { cat "$out" >&2; fail "no result line from rank $r of $prog"; }
        done
        grep '^rank' "$out"
    done
    ;;
*)
    fail "unknown step"
    ;;
esac
