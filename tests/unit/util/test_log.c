/* tests/unit/util/test_log.c - the log file's size-based rotation (util/log.c), by one process and
 * by several writing one file at once, as the daemon, its supervisor and a successor do. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/log.h"

#define MAX_BYTES 4096
#define FILES     3
#define WRITERS   4
#define LINES     600 /* per writer: about 25 rotations' worth in all */

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/efc-test-log-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/efc.log", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;

    char p[160];
    unlink(path);
    for (int i = 1; i <= FILES + 2; i++) {
        snprintf(p, sizeof(p), "%s.%d", path, i);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

/* One file of the set: its size, and each line's writer and sequence number checked for order
 * (per writer, increasing) against LAST, which carries over from older files to newer ones. */
static int check_file(const char *p, long last[WRITERS + 1], int *lines)
{
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    struct stat st;
    assert_int_equal(fstat(fileno(f), &st), 0);
    /* the bound is checked before a line: one line (under 200 bytes) may pass it */
    assert_true(st.st_size <= MAX_BYTES + 200);
    char line[2100];
    while (fgets(line, sizeof(line), f)) {
        int w;
        long seq;
        const char *m = strstr(line, ": writer ");
        assert_non_null(m);
        assert_int_equal(sscanf(m, ": writer %d line %ld", &w, &seq), 2);
        assert_true(w >= 0 && w <= WRITERS);
        assert_true(seq > last[w]); /* whole lines, in order, none twice */
        last[w] = seq;
        assert_true(line[strlen(line) - 1] == '\n');
        (*lines)++;
    }
    fclose(f);
    return 1;
}

static void check_set(int *files_seen, int *lines)
{
    long last[WRITERS + 1];
    char p[160];
    for (int i = 0; i <= WRITERS; i++)
        last[i] = -1;
    *files_seen = 0;
    *lines = 0;
    for (int i = FILES - 1; i >= 0; i--) { /* oldest first */
        if (i == 0)
            snprintf(p, sizeof(p), "%s", path);
        else
            snprintf(p, sizeof(p), "%s.%d", path, i);
        int r = check_file(p, last, lines);
        assert_true(r >= 0);
        *files_seen += r;
    }
    snprintf(p, sizeof(p), "%s.%d", path, FILES);
    assert_int_equal(access(p, F_OK), -1); /* never more than FILES */
}

static void test_one_writer_rotates(void **state)
{
    (void)state;
    assert_int_equal(log_open_file(path), 0);
    log_set_rotation(MAX_BYTES, FILES);
    for (int i = 0; i < LINES; i++)
        log_info("writer %d line %d %s", 0, i, "padding to make the line longer");
    int files, lines;
    check_set(&files, &lines);
    assert_int_equal(files, FILES);
    /* the newest lines are kept: the last one is in the current file */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[2100], last[2100] = "";
    while (fgets(line, sizeof(line), f))
        strcpy(last, line);
    fclose(f);
    char want[64];
    snprintf(want, sizeof(want), "writer 0 line %d ", LINES - 1);
    assert_non_null(strstr(last, want));
    assert_true(lines > 0 && lines < LINES);
}

static void test_one_file_kept(void **state)
{
    (void)state;
    assert_int_equal(log_open_file(path), 0);
    log_set_rotation(MAX_BYTES, 1);
    for (int i = 0; i < 200; i++)
        log_info("writer %d line %d %s", 0, i, "padding to make the line longer");
    char p[160];
    snprintf(p, sizeof(p), "%s.1", path);
    assert_int_equal(access(p, F_OK), -1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 0 && st.st_size <= MAX_BYTES + 200);
}

static void test_no_rotation_by_default_size_zero(void **state)
{
    (void)state;
    assert_int_equal(log_open_file(path), 0);
    log_set_rotation(0, FILES);
    for (int i = 0; i < 200; i++)
        log_info("writer %d line %d %s", 0, i, "padding to make the line longer");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > MAX_BYTES);
    char p[160];
    snprintf(p, sizeof(p), "%s.1", path);
    assert_int_equal(access(p, F_OK), -1);
}

/* A process whose file another process rotated away writes its next line to the new file. */
static void test_stale_writer_follows(void **state)
{
    (void)state;
    int go[2];
    char p1[160];
    snprintf(p1, sizeof(p1), "%s.1", path);
    assert_int_equal(log_open_file(path), 0);
    log_set_rotation(MAX_BYTES, FILES);
    log_info("writer %d line %d", 0, 0); /* the file exists before the other opens it */
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        close(go[1]);
        if (log_open_file(path) != 0)
            _exit(1);
        log_set_rotation(MAX_BYTES, FILES);
        if (read(go[0], &c, 1) != 1) /* until this process's file has been rotated */
            _exit(1);
        log_info("writer %d line %d", 1, 0);
        _exit(0);
    }
    close(go[0]);
    for (int i = 1; i < 10000 && access(p1, F_OK) != 0; i++)
        log_info("writer %d line %d %s", 0, i, "padding to make the line longer");
    assert_int_equal(access(p1, F_OK), 0);
    assert_int_equal(write(go[1], "x", 1), 1);
    close(go[1]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[2100];
    bool found = false;
    while (fgets(line, sizeof(line), f))
        found = found || strstr(line, "writer 1 line 0") != NULL;
    fclose(f);
    assert_true(found);
}

/* Several processes, each with its own descriptor of the file, rotating it under one another. */
static void test_processes_share_one_file(void **state)
{
    (void)state;
    pid_t pids[WRITERS];
    int go[2];
    assert_int_equal(pipe(go), 0);
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            char c;
            close(go[1]);
            if (log_open_file(path) != 0)
                _exit(1);
            log_set_rotation(MAX_BYTES, FILES);
            if (read(go[0], &c, 1) != 0) /* all start together: at EOF */
                _exit(1);
            for (int i = 0; i < LINES; i++)
                log_info("writer %d line %d %s", w + 1, i, "padding to make the line longer");
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]);
    for (int w = 0; w < WRITERS; w++) {
        int st = 0;
        assert_int_equal(waitpid(pids[w], &st, 0), pids[w]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    int files, lines;
    check_set(&files, &lines);
    assert_int_equal(files, FILES);
    assert_true(lines > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_writer_rotates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_file_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_rotation_by_default_size_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_writer_follows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processes_share_one_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
