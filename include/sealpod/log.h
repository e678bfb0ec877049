/* SPDX-License-Identifier: Apache-2.0 */
/* Logging with levels, to stderr (or a file) with the program's name. */
#ifndef SEALPOD_LOG_H
#define SEALPOD_LOG_H

#include "sealpod/common.h"

enum sp_log_level {
	SP_LOG_ERROR = 0,
	SP_LOG_WARN = 1,
	SP_LOG_INFO = 2,
	SP_LOG_DEBUG = 3,
};

/* ident appears in front of every line; the string is not copied. */
SP_PUBLIC void sp_log_init(const char *ident, int level);
SP_PUBLIC void sp_log_set_level(int level);
SP_PUBLIC int sp_log_get_level(void);
/* Lines as JSON objects {"time","level","msg"} instead of text. */
SP_PUBLIC void sp_log_set_json(bool json);
/* Write to fd instead of stderr (the fd is not closed by the logger). */
SP_PUBLIC void sp_log_set_fd(int fd);
/* Parses "error", "warn", "info", "debug"; -1 if unknown. */
SP_PUBLIC int sp_log_level_parse(const char *name);
SP_PUBLIC void sp_log(int level, const char *fmt, ...) SP_PRINTF(2, 3);

#define sp_log_error(...) sp_log(SP_LOG_ERROR, __VA_ARGS__)
#define sp_log_warn(...) sp_log(SP_LOG_WARN, __VA_ARGS__)
#define sp_log_info(...) sp_log(SP_LOG_INFO, __VA_ARGS__)
#define sp_log_debug(...) sp_log(SP_LOG_DEBUG, __VA_ARGS__)

#endif
