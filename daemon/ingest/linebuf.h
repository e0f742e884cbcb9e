/*
 * linebuf.h - splits a byte stream into lines, resumable at any chunk boundary.
 *
 * A connection owns one ad_linebuf and a buffer of `cap` bytes (the per-connection
 * maximum line length). Bytes arrive in chunks of any size; each complete line is handed
 * to a callback as pointer + length, without its '\n' and without one trailing '\r'.
 * A line wholly inside one chunk is handed out in place (no copy); only a line split
 * across chunks is gathered in the buffer. A line longer than `cap` is dropped whole
 * (the bytes up to its newline are skipped) and counted; the stream goes on. No I/O,
 * no allocation.
 */
#ifndef AD_LINEBUF_H
#define AD_LINEBUF_H

#include <stddef.h>

typedef struct ad_linebuf {
    char *buf;      /* caller's buffer, cap bytes: a line split across chunks */
    size_t cap;     /* the longest line accepted, in bytes (without the newline; a '\r'
                       before it counts) */
    size_t len;     /* bytes of the partial line held in buf */
    int discarding; /* inside an over-long line: skipping to its newline */
} ad_linebuf;

/* Called for each complete line. */
typedef void (*ad_line_fn)(void *ctx, const char *line, size_t len);

/* Starts an empty line buffer over buf (cap >= 1). */
void ad_linebuf_init(ad_linebuf *lb, char *buf, size_t cap);

/* Feeds n bytes: calls fn for each line completed by them, in order. Returns the
 * number of over-long lines dropped during this call. */
size_t ad_linebuf_feed(ad_linebuf *lb, const char *p, size_t n, ad_line_fn fn, void *ctx);

/* End of stream. A partial line held is handed to fn when `deliver` is set (a clean
 * close: the last line needed no newline), else dropped. Returns 1 if a partial line
 * was held (delivered or dropped), 0 if none; an over-long line in progress counts as
 * already dropped and returns 0. The buffer is empty afterwards. */
int ad_linebuf_finish(ad_linebuf *lb, int deliver, ad_line_fn fn, void *ctx);

#endif
