/* SPDX-License-Identifier: Apache-2.0 */
/* What every sealpod header needs: export marker, attributes, cleanup. */
#ifndef SEALPOD_COMMON_H
#define SEALPOD_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define SP_PUBLIC __attribute__((visibility("default")))
#define SP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define SP_UNUSED __attribute__((unused))
#define SP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Out-of-memory aborts: there is no useful way to go on. */
SP_PUBLIC void *sp_xmalloc(size_t n);
SP_PUBLIC void *sp_xzalloc(size_t n);
SP_PUBLIC void *sp_xcalloc(size_t count, size_t size);
SP_PUBLIC void *sp_xrealloc(void *p, size_t n);
SP_PUBLIC char *sp_xstrdup(const char *s);
SP_PUBLIC char *sp_xstrndup(const char *s, size_t n);
SP_PUBLIC void *sp_xmemdup(const void *p, size_t n);
SP_PUBLIC char *sp_xasprintf(const char *fmt, ...) SP_PRINTF(1, 2);
SP_PUBLIC void sp_oom(void) __attribute__((noreturn));

/* Overflow-checked size arithmetic: false when the result does not fit. */
static inline bool sp_add_size(size_t *out, size_t a, size_t b)
{
	return !__builtin_add_overflow(a, b, out);
}
static inline bool sp_mul_size(size_t *out, size_t a, size_t b)
{
	return !__builtin_mul_overflow(a, b, out);
}

/* Cleanup helpers, released on every path out of a scope. */
static inline void sp_freep(void *p)
{
	free(*(void **)p);
}
static inline void sp_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void sp_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
static inline void sp_strv_freep(char ***v)
{
	if (*v) {
		for (char **p = *v; *p; p++)
			free(*p);
		free(*v);
	}
}
#define _cleanup_free_ __attribute__((cleanup(sp_freep)))
#define _cleanup_close_ __attribute__((cleanup(sp_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(sp_fclosep)))
#define _cleanup_strv_ __attribute__((cleanup(sp_strv_freep)))

/* Ownership moves out of a cleanup variable with these. */
#define sp_steal_ptr(pp)                                                       \
	({                                                                     \
		__typeof__(*(pp)) _sp_tmp = *(pp);                             \
		*(pp) = NULL;                                                  \
		_sp_tmp;                                                       \
	})
static inline int sp_steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

/* Constant-time comparison for secrets and digests. */
SP_PUBLIC bool sp_memeq_ct(const void *a, const void *b, size_t n);

#endif
