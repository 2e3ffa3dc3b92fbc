/*
 * The installed tree works for an out-of-tree consumer: the current build is installed
 * with `cmake --install` into a temporary prefix, and the examples/ programs are built
 * against it (C with find_package(pride), pride::pride_static and pkg-config, C++
 * and Fortran with find_package) and run with the installed pride-run on 2 ranks,
 * each rank printing the results it checked; the MPI program tests/mpi/mpi_boot.c is
 * built against pride::pride_mpi and pride-mpi.pc and run under mpirun.
 *
 * The one idea: the steps are plain shell in tests/tools/install.sh (what a user would
 * type); this file runs them in order on one prefix, so a failing step names itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

static char dir[64];
static int skipped; /* install.sh skipped the whole test (it said why) */

/* Run install.sh STEP DIR: its exit status, 77 meaning "skipped". */
static int install_step(const char *step)
{
    const char *src = getenv("PRIDE_SOURCE_DIR");
    assert_non_null(src);
    assert_non_null(getenv("PRIDE_TOOLS_DIR"));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/tools/install.sh' %s '%s'", src, step, dir);
    int st = system(cmd);
    assert_true(st != -1 && WIFEXITED(st));
    return WEXITSTATUS(st);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/pride-install-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    int st = install_step("install");
    skipped = st == 77;
    return st == 0 || skipped ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void run_step(const char *step)
{
    if (skipped)
        skip();
    int st = install_step(step);
    if (st == 77)
        skip();
    assert_int_equal(st, 0);
}

static void test_cmake_c(void **state)
{
    (void)state;
    run_step("cmake-c");
}

static void test_pkgconfig_c(void **state)
{
    (void)state;
    run_step("pkgconfig-c");
}

static void test_static_c(void **state)
{
    (void)state;
    run_step("static-c");
}

static void test_cxx(void **state)
{
    (void)state;
    run_step("cxx");
}

static void test_fortran(void **state)
{
    (void)state;
    run_step("fortran");
}

static void test_version_rejected(void **state)
{
    (void)state;
    run_step("version");
}

static void test_mpi(void **state)
{
    (void)state;
    run_step("mpi");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmake_c),
        cmocka_unit_test(test_pkgconfig_c),
        cmocka_unit_test(test_static_c),
        cmocka_unit_test(test_cxx),
        cmocka_unit_test(test_fortran),
        cmocka_unit_test(test_version_rejected),
        cmocka_unit_test(test_mpi),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
