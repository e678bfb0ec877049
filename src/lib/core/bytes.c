/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <string.h>

#include "sealpod/bytes.h"

void sp_reader_init(sp_reader *r, const void *data, size_t len)
{
	r->data = data;
	r->len = data ? len : 0;
	r->off = 0;
	r->failed = false;
}

size_t sp_reader_left(const sp_reader *r)
{
	return r->failed ? 0 : r->len - r->off;
}

bool sp_reader_ok(const sp_reader *r)
{
	return !r->failed;
}

/* Checks that n more bytes exist; marks the reader failed if not. */
static bool need(sp_reader *r, size_t n)
{
	if (r->failed || n > r->len - r->off) {
		r->failed = true;
		return false;
	}
	return true;
}

bool sp_reader_seek(sp_reader *r, size_t off)
{
	if (r->failed || off > r->len) {
		r->failed = true;
		return false;
	}
	r->off = off;
	return true;
}

bool sp_reader_skip(sp_reader *r, size_t n)
{
	if (!need(r, n))
		return false;
	r->off += n;
	return true;
}

bool sp_reader_ptr(sp_reader *r, const uint8_t **out, size_t n)
{
	if (!need(r, n))
		return false;
	*out = r->data + r->off;
	r->off += n;
	return true;
}

bool sp_reader_copy(sp_reader *r, void *out, size_t n)
{
	const uint8_t *p;
	if (!sp_reader_ptr(r, &p, n))
		return false;
	if (n)
		memcpy(out, p, n);
	return true;
}

bool sp_reader_sub(sp_reader *r, sp_reader *out, size_t n)
{
	const uint8_t *p;
	if (!sp_reader_ptr(r, &p, n))
		return false;
	sp_reader_init(out, p, n);
	return true;
}

bool sp_reader_u8(sp_reader *r, uint8_t *out)
{
	if (!need(r, 1))
		return false;
	*out = r->data[r->off++];
	return true;
}

#define READ_INT(name, type, n, le)                                            \
	bool name(sp_reader *r, type *out)                                     \
	{                                                                      \
		const uint8_t *p;                                              \
		if (!sp_reader_ptr(r, &p, n))                                  \
			return false;                                          \
		type v = 0;                                                    \
		for (int i = 0; i < n; i++)                                    \
			v |= (type)p[le ? i : n - 1 - i] << (8 * i);           \
		*out = v;                                                      \
		return true;                                                   \
	}

READ_INT(sp_reader_u16le, uint16_t, 2, true)
READ_INT(sp_reader_u32le, uint32_t, 4, true)
READ_INT(sp_reader_u64le, uint64_t, 8, true)
READ_INT(sp_reader_u16be, uint16_t, 2, false)
READ_INT(sp_reader_u32be, uint32_t, 4, false)
READ_INT(sp_reader_u64be, uint64_t, 8, false)

void sp_buf_reserve(sp_buf *b, size_t extra)
{
	size_t need_len;
	if (!sp_add_size(&need_len, b->len, extra) ||
	    !sp_add_size(&need_len, need_len, 1))
		sp_oom();
	if (need_len <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need_len) {
		if (!sp_mul_size(&cap, cap, 2))
			cap = need_len;
	}
	b->data = sp_xrealloc(b->data, cap);
	b->cap = cap;
}

void sp_buf_put(sp_buf *b, const void *data, size_t n)
{
	sp_buf_reserve(b, n);
	if (n)
		memcpy(b->data + b->len, data, n);
	b->len += n;
}

void sp_buf_put_u8(sp_buf *b, uint8_t v)
{
	sp_buf_put(b, &v, 1);
}

void sp_buf_put_u16le(sp_buf *b, uint16_t v)
{
	uint8_t p[2];
	sp_put_le16(p, v);
	sp_buf_put(b, p, 2);
}

void sp_buf_put_u32le(sp_buf *b, uint32_t v)
{
	uint8_t p[4];
	sp_put_le32(p, v);
	sp_buf_put(b, p, 4);
}

void sp_buf_put_u64le(sp_buf *b, uint64_t v)
{
	uint8_t p[8];
	sp_put_le64(p, v);
	sp_buf_put(b, p, 8);
}

void sp_buf_put_u32be(sp_buf *b, uint32_t v)
{
	uint8_t p[4];
	sp_put_be32(p, v);
	sp_buf_put(b, p, 4);
}

void sp_buf_put_zeros(sp_buf *b, size_t n)
{
	sp_buf_reserve(b, n);
	memset(b->data + b->len, 0, n);
	b->len += n;
}

void sp_buf_printf(sp_buf *b, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		sp_oom();
	sp_buf_reserve(b, (size_t)n);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	b->len += (size_t)n;
}

void sp_buf_terminate(sp_buf *b)
{
	sp_buf_reserve(b, 0);
	b->data[b->len] = 0;
}

uint8_t *sp_buf_steal(sp_buf *b, size_t *len_out)
{
	sp_buf_terminate(b);
	uint8_t *d = b->data;
	if (len_out)
		*len_out = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}

void sp_buf_free(sp_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
