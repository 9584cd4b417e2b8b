/* util/timeutil.c - clocks and the two date formats OSS speaks. Parsing is strict and
 * locale-independent (strptime's %a/%b follow the locale, so month names are matched here). */
#include "util/timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

uint64_t time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t time_real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void time_fmt_rfc1123(time_t t, char *out, size_t outlen)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void time_fmt_iso8601_basic(time_t t, char *out, size_t outlen)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, outlen, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int check_tm(const struct tm *tm)
{
    if (tm->tm_mon < 0 || tm->tm_mon > 11 || tm->tm_mday < 1 || tm->tm_mday > 31 ||
        tm->tm_hour < 0 || tm->tm_hour > 23 || tm->tm_min < 0 || tm->tm_min > 59 ||
        tm->tm_sec < 0 || tm->tm_sec > 60 || tm->tm_year < 70 || tm->tm_year > 8000)
        return -EINVAL;
    return 0;
}

int time_parse_http(const char *s, time_t *t)
{
    struct tm tm;
    char mon[4] = {0}, wd[4] = {0};
    int n = 0;

    if (s == NULL || strlen(s) > 64)
        return -EINVAL;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%3[A-Za-z], %d %3[A-Za-z] %d %d:%d:%d GMT%n", wd, &tm.tm_mday, mon, &tm.tm_year,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) == 7 &&
        n > 0 && s[n] == '\0' && wd[3] == '\0') {
        tm.tm_mon = -1;
        for (int i = 0; i < 12; i++)
            if (strcmp(mon, months[i]) == 0)
                tm.tm_mon = i;
        tm.tm_year -= 1900;
    } else {
        int frac = 0;
        memset(&tm, 0, sizeof(tm));
        n = 0;
        if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
            n == 0)
            return -EINVAL;
        const char *p = s + n;
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9' && frac < 12) {
                p++;
                frac++;
            }
        }
        if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
            return -EINVAL;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
    }
    if (check_tm(&tm))
        return -EINVAL;
    *t = timegm(&tm);
    return 0;
}
