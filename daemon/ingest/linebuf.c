/*
 * linebuf.c - the line framer: finds the newlines in each chunk, hands out the lines
 * wholly inside it in place, gathers a line split across chunks in the caller's buffer,
 * and skips over-long lines to their newline. One pass over each chunk (memchr), no
 * allocation.
 */
#include "ingest/linebuf.h"

#include <string.h>

void ad_linebuf_init(ad_linebuf *lb, char *buf, size_t cap)
{
    lb->buf = buf;
    lb->cap = cap;
    lb->len = 0;
    lb->discarding = 0;
}

/* Hands a line to fn without one trailing '\r'. */
static void deliver(const char *line, size_t len, ad_line_fn fn, void *ctx)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    fn(ctx, line, len);
}

size_t ad_linebuf_feed(ad_linebuf *lb, const char *p, size_t n, ad_line_fn fn, void *ctx)
{
    const char *end = p + n;
    size_t dropped = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t seg = (size_t)((nl ? nl : end) - p);

        if (lb->discarding) { /* the rest of an over-long line */
            if (!nl)
                break;
            lb->discarding = 0;
        } else if (seg > lb->cap - lb->len) { /* over-long: counted when found */
            lb->len = 0;
            dropped++;
            if (!nl) {
                lb->discarding = 1;
                break;
            }
        } else if (!nl) { /* a partial line: keep it for the next chunk */
            memcpy(lb->buf + lb->len, p, seg);
            lb->len += seg;
            break;
        } else if (lb->len > 0) { /* the end of a gathered line */
            memcpy(lb->buf + lb->len, p, seg);
            size_t len = lb->len + seg;
            lb->len = 0;
            deliver(lb->buf, len, fn, ctx);
        } else { /* wholly inside this chunk: in place */
            deliver(p, seg, fn, ctx);
        }
        p = nl + 1;
    }
    return dropped;
}

int ad_linebuf_finish(ad_linebuf *lb, int deliver_partial, ad_line_fn fn, void *ctx)
{
    if (lb->discarding) {
        lb->discarding = 0;
        lb->len = 0;
        return 0;
    }
    if (lb->len == 0)
        return 0;
    size_t len = lb->len;
    lb->len = 0;
    if (deliver_partial)
        deliver(lb->buf, len, fn, ctx);
    return 1;
}
