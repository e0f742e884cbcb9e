/*
 * err.h - the error codes of the whole project (models library and daemon), returned
 * negated: 0 or a positive count is success, -AD_E... a failure.
 *
 * The numbers are never stored or sent anywhere (messages carry the text), so a code may
 * be added at the end. A header of its own so a module needing only the codes does not
 * include a network's header.
 */
#ifndef AD_ERR_H
#define AD_ERR_H

enum ad_err {
    AD_OK = 0,
    AD_EINVAL = 1,  /* bad argument or shape */
    AD_ENOMEM = 2,  /* allocation failed */
    AD_EFORMAT = 3, /* a blob is damaged, of another version or of another shape */
    AD_EFULL = 4,   /* a bounded table or queue is full (daemon) */
    AD_EIO = 5      /* a system call failed; errno or the message says why (daemon) */
};

/* The code's name ("AD_EINVAL"; "AD_E?" for another number), for messages and tests;
 * takes the code or its negation. */
const char *ad_err_name(int err);

#endif
