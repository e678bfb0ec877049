/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded reading and growable writing of wire formats. A reader never
 * reads past its end: every getter checks and fails instead, and a failed
 * reader stays failed, so a parser may check once at the end. */
#ifndef SEALPOD_BYTES_H
#define SEALPOD_BYTES_H

#include "sealpod/common.h"

typedef struct sp_reader {
	const uint8_t *data;
	size_t len;
	size_t off;
	bool failed; /* set by any out-of-bounds request */
} sp_reader;

SP_PUBLIC void sp_reader_init(sp_reader *r, const void *data, size_t len);
SP_PUBLIC size_t sp_reader_left(const sp_reader *r);
SP_PUBLIC bool sp_reader_ok(const sp_reader *r);
/* Moves to an absolute offset (fails if beyond the end). */
SP_PUBLIC bool sp_reader_seek(sp_reader *r, size_t off);
SP_PUBLIC bool sp_reader_skip(sp_reader *r, size_t n);
SP_PUBLIC bool sp_reader_u8(sp_reader *r, uint8_t *out);
SP_PUBLIC bool sp_reader_u16le(sp_reader *r, uint16_t *out);
SP_PUBLIC bool sp_reader_u32le(sp_reader *r, uint32_t *out);
SP_PUBLIC bool sp_reader_u64le(sp_reader *r, uint64_t *out);
SP_PUBLIC bool sp_reader_u16be(sp_reader *r, uint16_t *out);
SP_PUBLIC bool sp_reader_u32be(sp_reader *r, uint32_t *out);
SP_PUBLIC bool sp_reader_u64be(sp_reader *r, uint64_t *out);
/* Copies n bytes into out. */
SP_PUBLIC bool sp_reader_copy(sp_reader *r, void *out, size_t n);
/* Points *out at the next n bytes without copying. */
SP_PUBLIC bool sp_reader_ptr(sp_reader *r, const uint8_t **out, size_t n);
/* A sub-reader over the next n bytes; advances r past them. */
SP_PUBLIC bool sp_reader_sub(sp_reader *r, sp_reader *out, size_t n);

/* Little-endian and big-endian loads and stores on raw memory. */
static inline uint16_t sp_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t sp_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}
static inline uint64_t sp_le64(const uint8_t *p)
{
	return (uint64_t)sp_le32(p) | (uint64_t)sp_le32(p + 4) << 32;
}
static inline uint32_t sp_be32(const uint8_t *p)
{
	return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[0] << 24;
}
static inline void sp_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void sp_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void sp_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void sp_put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * (3 - i)));
}

/* A growable buffer. Growth past SIZE_MAX aborts like any OOM. */
typedef struct sp_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
} sp_buf;

#define SP_BUF_INIT {NULL, 0, 0}
SP_PUBLIC void sp_buf_reserve(sp_buf *b, size_t extra);
SP_PUBLIC void sp_buf_put(sp_buf *b, const void *data, size_t n);
SP_PUBLIC void sp_buf_put_u8(sp_buf *b, uint8_t v);
SP_PUBLIC void sp_buf_put_u16le(sp_buf *b, uint16_t v);
SP_PUBLIC void sp_buf_put_u32le(sp_buf *b, uint32_t v);
SP_PUBLIC void sp_buf_put_u64le(sp_buf *b, uint64_t v);
SP_PUBLIC void sp_buf_put_u32be(sp_buf *b, uint32_t v);
SP_PUBLIC void sp_buf_put_zeros(sp_buf *b, size_t n);
SP_PUBLIC void sp_buf_printf(sp_buf *b, const char *fmt, ...) SP_PRINTF(2, 3);
/* Appends a NUL without counting it in len, so data is a C string. */
SP_PUBLIC void sp_buf_terminate(sp_buf *b);
/* Hands the bytes to the caller and empties the buffer. */
SP_PUBLIC uint8_t *sp_buf_steal(sp_buf *b, size_t *len_out);
SP_PUBLIC void sp_buf_free(sp_buf *b);
#define _cleanup_buf_ __attribute__((cleanup(sp_buf_free)))

#endif
