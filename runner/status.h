/* status.h - status codes and error messages shared by every part of the model runner.
 *
 * Every fallible runner function returns an esar_status and, when given a non-NULL esar_err,
 * writes one line saying what is wrong and where (the key, the tensor, the file offset). The
 * runner never aborts and never reads environment variables. An esar_err belongs to its caller:
 * use one per thread.
 */
#ifndef ESAR_STATUS_H
#define ESAR_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* The numeric values are pinned. */
typedef enum esar_status {
    ESAR_OK = 0,
    ESAR_ERR_ARG = 1,         /* a NULL pointer, an index out of range, a bad size */
    ESAR_ERR_NOMEM = 2,       /* a host allocation failed */
    ESAR_ERR_IO = 3,          /* the file cannot be opened, mapped or read */
    ESAR_ERR_FORMAT = 4,      /* the bytes are not a valid file of the expected format */
    ESAR_ERR_NOT_FOUND = 5,   /* no metadata key or tensor by that name */
    ESAR_ERR_TYPE = 6,        /* the key or tensor exists but holds another type or shape */
    ESAR_ERR_UNSUPPORTED = 7, /* valid, but a feature the runner does not implement */
    ESAR_ERR_LIMIT = 8,       /* a buffer the caller passed is too small, or a capacity is full */
    ESAR_ERR_DEVICE = 9       /* the Vulkan runtime or esa-vk failed (the message says which
                               * call and why: device memory, a limit, a lost device) */
} esar_status;

/* A caller-owned message buffer; msg is always NUL-terminated after a failing call. */
typedef struct esar_err {
    char msg[512];
} esar_err;

/* A static name of a status, e.g. "ESAR_ERR_FORMAT". Never NULL. */
const char *esar_status_string(esar_status status);

/* Records a printf-style message in err (when non-NULL) and returns status. For runner code. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
esar_status esar_fail(esar_err *err, esar_status status, const char *fmt, ...);

/* Adds context before (prefix) or after (suffix) err's message, printf-style, cutting at the
 * buffer's end. No-op when err is NULL. For runner code. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void esar_err_prefix(esar_err *err, const char *fmt, ...);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void esar_err_suffix(esar_err *err, const char *fmt, ...);

#ifdef __cplusplus
}
#endif

#endif
