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
#include <stdbool.h>
#include <stdio.h>

/* Keeps, in order, those of the N TESTS that an argument names (a shell pattern, such as
 * 'test_concurrent_*'; all of them when no argument names some), less those an argument starting
 * with '!' names ('!test_*_cap': tests/valgrind.sh leaves out what measures speed). Returns how
 * many are left, or 0 after a message when an argument matches none: a misspelt name must not
 * pass as a suite that ran. */
static inline size_t select_tests(struct CMUnitTest *tests, size_t n, int argc, char **argv)
{
    bool any_kept = false;
    for (int a = 1; a < argc; a++) {
        const char *pat = argv[a] + (argv[a][0] == '!');
        size_t i = 0;
        while (i < n && fnmatch(pat, tests[i].name, 0) != 0)
            i++;
        if (i == n) {
            fprintf(stderr, "%s: no test here is named '%s'\n", argv[0], pat);
            return 0;
        }
        any_kept |= pat == argv[a];
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        bool keep = !any_kept, dropped = false;
        for (int a = 1; a < argc; a++) {
            bool out = argv[a][0] == '!';
            if (fnmatch(argv[a] + out, tests[i].name, 0) == 0) {
                keep |= !out;
                dropped |= out;
            }
        }
        if (keep && !dropped)
            tests[kept++] = tests[i];
    }
    if (kept == 0)
        fprintf(stderr, "%s: the arguments leave out every test\n", argv[0]);
    return kept;
}

#endif
