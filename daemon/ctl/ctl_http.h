/*
 * ctl_http.h - anomalyctl's tiny blocking HTTP/1.1 client, and what its commands share:
 * HOST:PORT addresses, connecting with a timeout, the common --http/--token settings,
 * reading fields of the daemon's JSON.
 *
 * One request per connection ("Connection: close"): connect (getaddrinfo, every address
 * tried in turn), send a GET with an optional "Authorization: Bearer", read until the
 * server closes or the message is complete, and parse the status and body with
 * nodejs' http-parser (Debian's libhttp-parser-dev). Every step is bounded by one
 * deadline (AD_CTL_TIMEOUT seconds). Errors are negative ad_err codes (models/net.h)
 * with a message meant for a person: -AD_EINVAL for a malformed address (a usage
 * error), -AD_EIO for anything the network or the daemon did (not running, timed out),
 * -AD_EFORMAT for an answer that is not HTTP or not the JSON expected.
 */
#ifndef AD_CTL_HTTP_H
#define AD_CTL_HTTP_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define AD_CTL_TIMEOUT 5.0            /* seconds, per request */
#define AD_CTL_HTTP_DEFAULT "127.0.0.1:8080"
#define AD_CTL_MAX_BODY (64u << 20)   /* bytes of a response body kept at most */

/* The HTTP settings every command takes: --http HOST:PORT (else $ANOMALYD_HTTP, else
 * AD_CTL_HTTP_DEFAULT) and --token T (else $ANOMALYD_TOKEN, else none). The token is the
 * same for every instance of a list (ad_ctl_addrs). */
typedef struct ad_ctl_http_opts {
    const char *address; /* HOST:PORT */
    const char *token;   /* NULL or "" for none */
} ad_ctl_http_opts;

/* Several instances of a cluster (docs/SCALING.md): --http and $ANOMALYD_HTTP take a
 * comma-separated list of HOST:PORT. v[0..n) point into buf (one allocation each). */
#define AD_CTL_MAX_INSTANCES 256

typedef struct ad_ctl_addrs {
    int n;
    char **v;
    char *buf;
} ad_ctl_addrs;

/* Splits list at commas (spaces around an address are ignored) and checks each address
 * with ad_ctl_split_address. An empty entry, a repeated address or more than
 * AD_CTL_MAX_INSTANCES are errors. Returns 0 (free *a with ad_ctl_addrs_free), or
 * -AD_EINVAL / -AD_ENOMEM with a message naming `what`; *a is then empty. */
int ad_ctl_addrs_parse(ad_ctl_addrs *a, const char *list, const char *what, char *err,
                       size_t errlen);
void ad_ctl_addrs_free(ad_ctl_addrs *a);

/* Fills o from the environment (then the command's options override). */
void ad_ctl_http_opts_init(ad_ctl_http_opts *o);

/* A response. body is malloc'd and NUL-terminated (after body_len bytes). */
typedef struct ad_ctl_http_resp {
    int status;              /* 200, 404, ... */
    char *body;
    size_t body_len;
    char content_type[128];  /* "" if none */
} ad_ctl_http_resp;

/* Splits "host:port", "[v6]:port" into host (hostcap bytes) and port (portcap bytes;
 * 1..65535, digits). Returns 0 or -AD_EINVAL with a message naming `what` (e.g. "--http"). */
int ad_ctl_split_address(const char *address, const char *what, char *host, size_t hostcap,
                         char *port, size_t portcap, char *err, size_t errlen);

/* Connects a socket of type socktype (SOCK_STREAM or SOCK_DGRAM) to address within
 * timeout seconds, every address it resolves to tried in turn: the one connect loop of
 * anomalyctl (HTTP, replay, tail). `hint` ends the "cannot connect" message (e.g. "is
 * anomalyd running? ..."). Returns the descriptor (non-blocking, close-on-exec),
 * -AD_EINVAL (bad address) or -AD_EIO. */
int ad_ctl_connect(const char *address, const char *what, int socktype, double timeout,
                   const char *hint, char *err, size_t errlen);

/* Makes fd blocking again (after ad_ctl_connect) and, when send_timeout > 0, bounds each
 * write by it (SO_SNDTIMEO, whole seconds). */
void ad_ctl_set_blocking(int fd, double send_timeout);

/* GET path (already percent-encoded) from address. On 0 the caller owns *out (free with
 * ad_ctl_http_resp_free) whatever its status; else a negative ad_err and a message. */
int ad_ctl_http_get(const ad_ctl_http_opts *o, const char *path, ad_ctl_http_resp *out,
                    char *err, size_t errlen);

void ad_ctl_http_resp_free(ad_ctl_http_resp *r);

/* GET path and parse the body as JSON. A status other than 200 is an error (-AD_EIO)
 * whose message carries the daemon's {"error": ...} when it sent one (and says the token
 * is wrong or missing on 401). Returns 0 and *out (cJSON_Delete it) or a negative
 * ad_err. */
int ad_ctl_http_get_json(const ad_ctl_http_opts *o, const char *path, cJSON **out, char *err,
                         size_t errlen);

/* The same, and *status is the HTTP status when an answer came (0 when none did): a
 * cluster query tells "not on this instance" (404) from "this instance is down". */
int ad_ctl_http_get_json_status(const ad_ctl_http_opts *o, const char *path, cJSON **out,
                                int *status, char *err, size_t errlen);

/* The number o[name] (NAN when absent or not a number) and the string o[name] ("?" when
 * absent or not a string): how the commands read the daemon's JSON. o may be NULL. */
double ad_ctl_num(const cJSON *o, const char *name);
const char *ad_ctl_str(const cJSON *o, const char *name);

/* Percent-encodes s for a URL path segment or query value (unreserved bytes kept) into
 * out (outcap bytes). Returns 0 or -AD_EFULL. */
int ad_ctl_url_escape(const char *s, char *out, size_t outcap);

#endif
