/* SPDX-License-Identifier: Apache-2.0 */
/* Errors: a category code plus a message that names what was wrong. */
#ifndef SEALPOD_ERR_H
#define SEALPOD_ERR_H

#include <stdarg.h>

#include "sealpod/common.h"

/* Categories are small negative numbers, so a function can return one. */
enum sp_err_code {
	SP_OK = 0,
	SP_ERR_SYSTEM = -1,      /* a system call failed; sys_errno says why */
	SP_ERR_INVALID = -2,     /* a caller passed something unusable */
	SP_ERR_PARSE = -3,       /* outside bytes are malformed */
	SP_ERR_SIGNATURE = -4,   /* a signature does not verify */
	SP_ERR_CERTIFICATE = -5, /* a certificate or chain is unacceptable */
	SP_ERR_DENIED = -6,      /* a policy refused the request */
	SP_ERR_PROTOCOL = -7,    /* a peer broke the protocol */
	SP_ERR_TIMEOUT = -8,     /* a deadline passed */
	SP_ERR_NOT_FOUND = -9,   /* the named thing does not exist */
	SP_ERR_LIMIT = -10,      /* a size or count limit was exceeded */
	SP_ERR_UNSUPPORTED = -11,/* valid, but not implemented or not here */
	SP_ERR_EXISTS = -12,     /* the named thing already exists */
	SP_ERR_STATE = -13,      /* the request does not fit the current state */
	SP_ERR_APPRAISAL = -14,  /* evidence is authentic but fails a check */
	SP_ERR_CODE_MIN = -14,
};

typedef struct sp_err {
	int code;      /* an sp_err_code */
	int sys_errno; /* errno for SP_ERR_SYSTEM, else 0 */
	char *msg;     /* "context: context: cause" */
} sp_err;

/* Records an error in *err (if err is not NULL and *err is still empty) and
 * returns code, so callers write `return sp_error(err, SP_ERR_PARSE, ...)`.
 * If *err already holds an error, the first one wins. */
SP_PUBLIC int sp_error(sp_err **err, int code, const char *fmt, ...)
	SP_PRINTF(3, 4);
/* Records SP_ERR_SYSTEM with errnum, appending strerror(errnum). */
SP_PUBLIC int sp_error_sys(sp_err **err, int errnum, const char *fmt, ...)
	SP_PRINTF(3, 4);
SP_PUBLIC int sp_error_v(sp_err **err, int code, int errnum, const char *fmt,
			 va_list ap) SP_PRINTF(4, 0);
/* Prefixes context to the message already in *err; returns its code
 * (SP_ERR_INVALID if there was none, which is a bug in the caller). */
SP_PUBLIC int sp_error_wrap(sp_err **err, const char *fmt, ...) SP_PRINTF(2, 3);
SP_PUBLIC void sp_err_free(sp_err *e);
/* Frees *err and resets it to NULL. */
SP_PUBLIC void sp_err_clear(sp_err **err);
/* A short stable name for a code: "parse", "denied", ... */
SP_PUBLIC const char *sp_err_code_name(int code);
/* The message, or "unknown error" for NULL. */
SP_PUBLIC const char *sp_err_msg(const sp_err *e);

static inline void sp_err_freep(sp_err **e)
{
	sp_err_clear(e);
}
#define _cleanup_err_ __attribute__((cleanup(sp_err_freep)))

#endif
