/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <string.h>

#include "sealpod/common.h"

void sp_oom(void)
{
	static const char msg[] = "sealpod: out of memory\n";
	ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)r;
	abort();
}

void *sp_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		sp_oom();
	return p;
}

void *sp_xzalloc(size_t n)
{
	return sp_xcalloc(1, n);
}

void *sp_xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		sp_oom();
	return p;
}

void *sp_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		sp_oom();
	return q;
}

char *sp_xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		sp_oom();
	return p;
}

char *sp_xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		sp_oom();
	return p;
}

void *sp_xmemdup(const void *p, size_t n)
{
	void *q = sp_xmalloc(n);
	if (n)
		memcpy(q, p, n);
	return q;
}

char *sp_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	int r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		sp_oom();
	return s;
}

bool sp_memeq_ct(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t d = 0;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}
