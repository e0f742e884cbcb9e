/*
 * relabel.h - relabelling-lite: which remote-write series anomalyd models, by patterns on
 * the metric name and the labels (config `prometheus.include`, `exclude`, `rate`).
 *
 * A pattern is one of
 *   node_cpu_*                    a glob on the metric name
 *   job=node                      a matcher: a glob on one label's value
 *   job!=node                     the same, negated
 *   node_*{job=node,mode!=idle}   a selector: name glob (optional) and matchers, all of
 *                                 which must hold
 * Globs are fnmatch(3)'s (*, ?, [...], \ escapes; no special meaning for '/' or '.').
 * A value may be double-quoted ("a,b}" with \" and \\ inside) to hold ',' '}' or
 * blanks. A label the series lacks has the value "" (as in Prometheus), so `job!=` and
 * `{job!=""}` keep series that have a job label; `__name__` names the metric name.
 *
 * A list matches a series when any of its patterns matches it. The filter keeps a series
 * when the include list is empty or matches it, and the exclude list does not.
 */
#ifndef AD_RELABEL_H
#define AD_RELABEL_H

#include <stddef.h>

#include "ingest/remote_write.h" /* ad_label */

typedef struct ad_relabel ad_relabel;

/* Compiles n patterns (n may be 0: a list that matches nothing). Returns 0, or
 * -AD_EINVAL with "pattern 'p': what is wrong" in err, or -AD_ENOMEM. *out is set
 * only on success. */
int ad_relabel_compile(const char *const *patterns, int n, ad_relabel **out, char *err,
                       size_t errlen);

/* Checks one pattern's syntax: 0, or -AD_EINVAL with the reason in err. */
int ad_relabel_check(const char *pattern, char *err, size_t errlen);

/* Whether any pattern matches the series (name, labels sorted or not). 0 for NULL or an
 * empty list. */
int ad_relabel_match(const ad_relabel *r, const char *name, const ad_label *labels,
                     size_t nlabels);

/* Patterns in the list. */
int ad_relabel_count(const ad_relabel *r);

void ad_relabel_free(ad_relabel *r);

#endif
