// fuzz-links: efc_cli
/* tests/fuzz/fuzz_cli_reply.c - the CLI's reading of management API answers (cli_reply_parse)
 * and every printer fed with what it accepts. The input is an answer's body. Whatever the daemon
 * (or whatever answers on its port) sends, the text printed must hold no control character but
 * the newline: a key name could otherwise drive the user's terminal. The cluster printer also
 * prints nothing when it refuses an answer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\n') || c == 0x7f)
            abort();
        if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
            (unsigned char)s[i + 1] <= 0x9f)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256], *text = NULL;
    size_t len = 0;
    json_t *reply = cli_reply_parse((const char *)data, size, err, sizeof(err));
    if (reply == NULL) {
        if (strlen(err) == 0)
            abort(); /* a refusal always says why */
        return 0;
    }
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        abort();
    (void)cli_reply_failed(reply);
    cli_print_tier(f, reply, err, sizeof(err));
    cli_print_results(f, f, reply, "load");
    cli_print_results(f, f, reply, "cancel");
    cli_print_stat(f, f, reply, "86400", err, sizeof(err));
    long before = ftell(f);
    err[0] = '\0';
    if (cli_print_cluster(f, reply, err, sizeof(err)) != 0 && (ftell(f) != before || !err[0]))
        abort(); /* a refused answer prints nothing, and says why */
    fclose(f);
    check_text(text, len);
    free(text);

    struct cli_task *tasks;
    long n = cli_stat_tasks(reply, &tasks, err, sizeof(err));
    for (long i = 0; i < n; i++) {
        char sizes[64], pct[16];
        check_text(tasks[i].path, strlen(tasks[i].path));
        check_text(tasks[i].error, strlen(tasks[i].error));
        cli_task_progress(&tasks[i], sizes, sizeof(sizes), pct, sizeof(pct));
        (void)cli_task_finished(tasks[i].status);
    }
    if (n > 0)
        free(tasks);
    json_decref(reply);
    return 0;
}
