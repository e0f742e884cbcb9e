/*
 * csv.c - timestamp,value rows: splitting a line and reading its timestamp.
 */
#include "ctl/csv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ad_csv_parse_time(const char *s, double *out)
{
    int Y, M, D, h, m;
    double sec;
    char *end;
    if (sscanf(s, "%4d-%2d-%2d%*[ T]%2d:%2d:%lf", &Y, &M, &D, &h, &m, &sec) == 6) {
        struct tm tm;
        if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec < 0 || sec >= 61)
            return -1;
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = Y - 1900;
        tm.tm_mon = M - 1;
        tm.tm_mday = D;
        tm.tm_hour = h;
        tm.tm_min = m;
        time_t t = timegm(&tm);
        *out = (double)t + (sec - floor(sec)) + floor(sec);
        return 0;
    }
    errno = 0;
    *out = strtod(s, &end);
    if (end == s || errno == ERANGE)
        return -1;
    while (*end == ' ' || *end == '\t')
        end++;
    return *end ? -1 : 0;
}

int ad_csv_split2(char *line, char **a, char **b)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    char *comma = strchr(line, ',');
    if (!comma || strchr(comma + 1, ','))
        return -1;
    *comma = '\0';
    *a = line;
    *b = comma + 1;
    while (**a == ' ')
        (*a)++;
    while (**b == ' ')
        (*b)++;
    return 0;
}

int ad_csv_is_header(const char *line)
{
    return strstr(line, "timestamp") != NULL;
}
