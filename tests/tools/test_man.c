/*
 * Every installed program has a man page, and every installed page renders without
 * warnings: the build is installed into a temporary prefix and tests/tools/man.sh
 * compares bin/ with share/man/man1/ and runs man -l, groff and mandoc (those that
 * are installed) over each page with warnings on.
 *
 * The one idea: the check runs on what `cmake --install` put down, so a tool added
 * under tools/ without a page, or a page CMake forgets to install, fails here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

static void test_every_tool_has_a_page(void **state)
{
    (void)state;
    const char *src = getenv("PRIDE_SOURCE_DIR");
    assert_non_null(src);
    assert_non_null(getenv("PRIDE_TOOLS_DIR"));
    char dir[64], cmd[1024];
    snprintf(dir, sizeof dir, "/tmp/pride-man-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "sh '%s/tests/tools/man.sh' '%s'", src, dir);
    int st = system(cmd);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_true(st != -1 && WIFEXITED(st));
    if (WEXITSTATUS(st) == 77)
        skip();
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_tool_has_a_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
