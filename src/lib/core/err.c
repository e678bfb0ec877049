/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <string.h>

#include "sealpod/err.h"

int sp_error_v(sp_err **err, int code, int errnum, const char *fmt, va_list ap)
{
	if (!err || *err)
		return code;
	sp_err *e = sp_xzalloc(sizeof(*e));
	char *msg;
	if (vasprintf(&msg, fmt, ap) < 0)
		sp_oom();
	if (code == SP_ERR_SYSTEM && errnum) {
		e->msg = sp_xasprintf("%s: %s", msg, strerror(errnum));
		free(msg);
	} else {
		e->msg = msg;
	}
	e->code = code;
	e->sys_errno = errnum;
	*err = e;
	return code;
}

int sp_error(sp_err **err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sp_error_v(err, code, 0, fmt, ap);
	va_end(ap);
	return code;
}

int sp_error_sys(sp_err **err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sp_error_v(err, SP_ERR_SYSTEM, errnum, fmt, ap);
	va_end(ap);
	return SP_ERR_SYSTEM;
}

int sp_error_wrap(sp_err **err, const char *fmt, ...)
{
	if (!err)
		return SP_ERR_INVALID;
	if (!*err)
		return sp_error(err, SP_ERR_INVALID, "internal: wrap without error");
	va_list ap;
	char *ctx;
	va_start(ap, fmt);
	int r = vasprintf(&ctx, fmt, ap);
	va_end(ap);
	if (r < 0)
		sp_oom();
	char *msg = sp_xasprintf("%s: %s", ctx, (*err)->msg);
	free(ctx);
	free((*err)->msg);
	(*err)->msg = msg;
	return (*err)->code;
}

void sp_err_free(sp_err *e)
{
	if (!e)
		return;
	free(e->msg);
	free(e);
}

void sp_err_clear(sp_err **err)
{
	if (err && *err) {
		sp_err_free(*err);
		*err = NULL;
	}
}

const char *sp_err_code_name(int code)
{
	static const char *const names[] = {
		"ok",        "system",   "invalid",  "parse",     "signature",
		"certificate", "denied", "protocol", "timeout",   "not-found",
		"limit",     "unsupported", "exists", "state",    "appraisal",
	};
	if (code > 0 || code < SP_ERR_CODE_MIN)
		return "unknown";
	return names[-code];
}

const char *sp_err_msg(const sp_err *e)
{
	return e && e->msg ? e->msg : "unknown error";
}
