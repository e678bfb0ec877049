/* SPDX-License-Identifier: Apache-2.0 */
/* Deterministic compression of the initramfs. Every encoder is run with
 * fixed parameters and no timestamps or names, so the output depends only
 * on the input bytes and the library version (recorded in the manifest). */
#include <lz4hc.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "sealpod/bytes.h"
#include "sealpod/guest.h"

#define ZSTD_LEVEL 19
#define GZIP_LEVEL 9

static int gzip(uint8_t **out, size_t *out_len, const void *in, size_t in_len,
		sp_err **err)
{
	z_stream s;
	memset(&s, 0, sizeof(s));
	/* windowBits 15 + 16: a gzip wrapper with mtime 0 and no file name. */
	if (deflateInit2(&s, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return sp_error(err, SP_ERR_SYSTEM, "zlib: deflateInit2 failed");
	gz_header h;
	memset(&h, 0, sizeof(h));
	h.os = 3; /* unix, whatever the build host */
	deflateSetHeader(&s, &h);
	size_t cap = deflateBound(&s, (uLong)in_len) + 64;
	uint8_t *buf = sp_xmalloc(cap);
	s.next_in = (Bytef *)in;
	s.avail_in = (uInt)in_len;
	s.next_out = buf;
	s.avail_out = (uInt)cap;
	int r = deflate(&s, Z_FINISH);
	deflateEnd(&s);
	if (r != Z_STREAM_END) {
		free(buf);
		return sp_error(err, SP_ERR_SYSTEM, "zlib: deflate failed (%d)", r);
	}
	*out = buf;
	*out_len = cap - s.avail_out;
	return 0;
}

static int zstd(uint8_t **out, size_t *out_len, const void *in, size_t in_len,
		sp_err **err)
{
	size_t cap = ZSTD_compressBound(in_len);
	uint8_t *buf = sp_xmalloc(cap);
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	if (!cc)
		sp_oom();
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, ZSTD_LEVEL);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_nbWorkers, 0);
	size_t n = ZSTD_compress2(cc, buf, cap, in, in_len);
	ZSTD_freeCCtx(cc);
	if (ZSTD_isError(n)) {
		free(buf);
		return sp_error(err, SP_ERR_SYSTEM, "zstd: %s", ZSTD_getErrorName(n));
	}
	*out = buf;
	*out_len = n;
	return 0;
}

/* LZ4 in the "legacy" framing, the one the kernel's initramfs unpacker
 * reads (lib/decompress_unlz4.c): a little-endian magic, then each 8 MiB
 * chunk of input as a little-endian 32-bit compressed size and an LZ4
 * block. */
#define LZ4_LEGACY_MAGIC 0x184C2102u
#define LZ4_LEGACY_CHUNK (8u << 20)

static int lz4_legacy(uint8_t **out, size_t *out_len, const uint8_t *in,
		      size_t in_len, sp_err **err)
{
	size_t chunks = in_len / LZ4_LEGACY_CHUNK + 1;
	size_t cap = 4 + chunks * (4 + (size_t)LZ4_compressBound(LZ4_LEGACY_CHUNK));
	uint8_t *buf = sp_xmalloc(cap);
	size_t n = 0;
	sp_put_le32(buf, LZ4_LEGACY_MAGIC);
	n += 4;
	for (size_t off = 0; off < in_len; off += LZ4_LEGACY_CHUNK) {
		int len = (int)(in_len - off < LZ4_LEGACY_CHUNK ? in_len - off
							       : LZ4_LEGACY_CHUNK);
		int z = LZ4_compress_HC((const char *)in + off, (char *)buf + n + 4, len,
					(int)(cap - n - 4), LZ4HC_CLEVEL_MAX);
		if (z <= 0) {
			free(buf);
			return sp_error(err, SP_ERR_SYSTEM,
					"lz4: compressing the chunk at %zu failed", off);
		}
		sp_put_le32(buf + n, (uint32_t)z);
		n += 4 + (size_t)z;
	}
	*out = buf;
	*out_len = n;
	return 0;
}

int sp_guest_compress(uint8_t **out, size_t *out_len, const void *in,
		      size_t in_len, int kind, sp_err **err)
{
	if (in_len > UINT32_MAX)
		return sp_error(err, SP_ERR_LIMIT, "initramfs of %zu bytes is too large",
				in_len);
	switch (kind) {
	case SP_GUEST_COMPRESS_GZIP:
		return gzip(out, out_len, in, in_len, err);
	case SP_GUEST_COMPRESS_ZSTD:
		return zstd(out, out_len, in, in_len, err);
	case SP_GUEST_COMPRESS_LZ4:
		return lz4_legacy(out, out_len, in, in_len, err);
	case SP_GUEST_COMPRESS_NONE:
		*out = sp_xmemdup(in, in_len);
		*out_len = in_len;
		return 0;
	}
	return sp_error(err, SP_ERR_INVALID, "unknown compression %d", kind);
}
