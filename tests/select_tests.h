/* tests/select_tests.h - run some of a cmocka suite's tests, named on the command line.
 *
 *     size_t n = select_tests(tests, sizeof(tests) / sizeof(tests[0]), argc, argv);
 *     if (n == 0)
 *         return 1;
 *     return _cmocka_run_group_tests("tests", tests, n, group_setup, group_teardown);
 *
 * The TSan stage of scripts/test.sh runs only the tests of a suite that start threads (the others
 * would take a minute under TSan and find nothing); with no argument every test runs. Include it
 * after <cmocka.h>.
 */
#ifndef EFC_TESTS_SELECT_TESTS_H
#define EFC_TESTS_SELECT_TESTS_H

#include <fnmatch.h>
#include <stdio.h>

/* Keeps, in order, those of the N TESTS that an argument names (a shell pattern, such as
 * 'test_concurrent_*'); all of them without arguments. Returns how many are left, or 0 after a
 * message when an argument matches none: a misspelt name must not pass as a suite that ran. */
static inline size_t select_tests(struct CMUnitTest *tests, size_t n, int argc, char **argv)
{
    if (argc < 2)
        return n;
    for (int a = 1; a < argc; a++) {
        size_t i = 0;
        while (i < n && fnmatch(argv[a], tests[i].name, 0) != 0)
            i++;
        if (i == n) {
            fprintf(stderr, "%s: no test here is named '%s'\n", argv[0], argv[a]);
            return 0;
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        for (int a = 1; a < argc; a++)
            if (fnmatch(argv[a], tests[i].name, 0) == 0) {
                tests[kept++] = tests[i];
                break;
            }
    return kept;
}

#endif
