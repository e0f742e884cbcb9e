/*
 * err.c - the names of the error codes (err.h).
 */
#include "err.h"

const char *ad_err_name(int err)
{
    switch ((enum ad_err)(err < 0 ? -err : err)) {
    case AD_OK: return "AD_OK";
    case AD_EINVAL: return "AD_EINVAL";
    case AD_ENOMEM: return "AD_ENOMEM";
    case AD_EFORMAT: return "AD_EFORMAT";
    case AD_EFULL: return "AD_EFULL";
    case AD_EIO: return "AD_EIO";
    }
    return "AD_E?";
}
