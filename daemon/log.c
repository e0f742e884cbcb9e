/*
 * log.c - leveled log lines on stderr, with syslog priority prefixes under journald.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "text.h"

static int log_level = AD_LOG_INFO;
static int log_journal;

/* JOURNAL_STREAM is "device:inode" of the stream journald gave us; only trust it when it
 * is still our stderr (a child of a service may have had stderr redirected). */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void ad_log_init(int level)
{
    log_level = level;
    log_journal = stderr_is_journal();
}

void ad_log_set_level(int level)
{
    log_level = level;
}

int ad_log_level(void)
{
    return log_level;
}

void ad_log(int level, const char *fmt, ...)
{
    static const int syslog_prio[] = {3, 4, 6, 7}; /* err, warning, info, debug */
    char line[4096], msg[2048];
    size_t n = 0;
    va_list ap;
    int r;

    if (level > log_level)
        return;
    if (level < AD_LOG_ERROR)
        level = AD_LOG_ERROR;
    if (level > AD_LOG_DEBUG)
        level = AD_LOG_DEBUG;
    if (log_journal) {
        n = (size_t)snprintf(line, sizeof(line), "<%d>", syslog_prio[level]);
    } else {
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s: ", ts.tv_nsec / 1000000,
                              ad_log_level_name(level));
    }
    /* A message may quote a client's bytes (a refused line, a series key): every byte
     * that is not printable text is escaped (text.h), so a log line is always printable
     * UTF-8 (the journal keeps it as text) and never carries a terminal escape. */
    va_start(ap, fmt);
    r = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r < 0)
        r = 0;
    if ((size_t)r >= sizeof(msg))
        r = sizeof(msg) - 1; /* truncated */
    n += ad_escape(line + n, sizeof(line) - n - 1, msg, (size_t)r);
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
}
