/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/log.h"

static const char *log_ident = "sealpod";
static int log_level = SP_LOG_INFO;
static bool log_json;
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void sp_log_init(const char *ident, int level)
{
	log_ident = ident;
	log_level = level;
}

void sp_log_set_level(int level)
{
	log_level = level;
}

int sp_log_get_level(void)
{
	return log_level;
}

void sp_log_set_json(bool json)
{
	log_json = json;
}

void sp_log_set_fd(int fd)
{
	log_fd = fd;
}

int sp_log_level_parse(const char *name)
{
	for (size_t i = 0; i < SP_ARRAY_LEN(level_names); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(name, "warning") == 0)
		return SP_LOG_WARN;
	return -1;
}

static void json_escape(sp_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			sp_buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			sp_buf_printf(b, "\\u%04x", c);
		else
			sp_buf_put_u8(b, c);
	}
}

void sp_log(int level, const char *fmt, ...)
{
	if (level > log_level)
		return;
	if (level < 0)
		level = 0;
	if (level > SP_LOG_DEBUG)
		level = SP_LOG_DEBUG;
	int saved = errno;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	_cleanup_buf_ sp_buf b = SP_BUF_INIT;
	if (log_json) {
		struct timespec ts;
		struct tm tm;
		char when[64];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		sp_buf_printf(&b, "{\"time\":\"%s.%09ldZ\",\"level\":\"%s\",\"msg\":\"",
			      when, ts.tv_nsec, level_names[level]);
		json_escape(&b, msg);
		sp_buf_printf(&b, "\"}\n");
	} else {
		sp_buf_printf(&b, "%s: %s: %s\n", log_ident, level_names[level], msg);
	}
	/* One write per line, so lines of several processes do not mix. */
	sp_write_all(log_fd, b.data, b.len);
	errno = saved;
}

/* Declared in file.h; kept here so the logger has no other dependency. */
int sp_write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
