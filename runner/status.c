/* status.c - status names and error recording for the model runner. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *esar_status_string(esar_status status)
{
    switch (status) {
    case ESAR_OK: return "ESAR_OK";
    case ESAR_ERR_ARG: return "ESAR_ERR_ARG";
    case ESAR_ERR_NOMEM: return "ESAR_ERR_NOMEM";
    case ESAR_ERR_IO: return "ESAR_ERR_IO";
    case ESAR_ERR_FORMAT: return "ESAR_ERR_FORMAT";
    case ESAR_ERR_NOT_FOUND: return "ESAR_ERR_NOT_FOUND";
    case ESAR_ERR_TYPE: return "ESAR_ERR_TYPE";
    case ESAR_ERR_UNSUPPORTED: return "ESAR_ERR_UNSUPPORTED";
    case ESAR_ERR_LIMIT: return "ESAR_ERR_LIMIT";
    case ESAR_ERR_DEVICE: return "ESAR_ERR_DEVICE";
    }
    return "unknown esar_status";
}

esar_status esar_fail(esar_err *err, esar_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

static void wrap(esar_err *err, int before, const char *fmt, va_list ap)
{
    char old[sizeof err->msg], add[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = 0;
    if (vsnprintf(add, sizeof add, fmt, ap) < 0)
        add[0] = 0;
    /* a longer message is cut at the buffer's end, on purpose */
    if (snprintf(err->msg, sizeof err->msg, "%s%s", before ? add : old, before ? old : add) < 0)
        err->msg[0] = 0;
}

void esar_err_prefix(esar_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    wrap(err, 1, fmt, ap);
    va_end(ap);
}

void esar_err_suffix(esar_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    wrap(err, 0, fmt, ap);
    va_end(ap);
}
