/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "sealpod/codec.h"
#include "sealpod/hash.h"

struct sp_hash {
	EVP_MD_CTX *ctx;
};

static const EVP_MD *md_for(int alg)
{
	switch (alg) {
	case SP_HASH_SHA256:
		return EVP_sha256();
	case SP_HASH_SHA384:
		return EVP_sha384();
	case SP_HASH_SHA512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

sp_hash *sp_hash_new(int alg)
{
	const EVP_MD *md = md_for(alg);
	if (!md)
		abort(); /* a programming error, not input */
	sp_hash *h = sp_xzalloc(sizeof(*h));
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, md, NULL) != 1)
		sp_oom();
	return h;
}

void sp_hash_update(sp_hash *h, const void *data, size_t len)
{
	if (len && EVP_DigestUpdate(h->ctx, data, len) != 1)
		sp_oom();
}

size_t sp_hash_final(sp_hash *h, uint8_t *out)
{
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(h->ctx, out, &n) != 1)
		sp_oom();
	return n;
}

void sp_hash_free(sp_hash *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

static void oneshot(int alg, uint8_t *out, const void *data, size_t len)
{
	sp_hash *h = sp_hash_new(alg);
	sp_hash_update(h, data, len);
	sp_hash_final(h, out);
	sp_hash_free(h);
}

void sp_sha256(uint8_t out[SP_SHA256_LEN], const void *data, size_t len)
{
	oneshot(SP_HASH_SHA256, out, data, len);
}

void sp_sha384(uint8_t out[SP_SHA384_LEN], const void *data, size_t len)
{
	oneshot(SP_HASH_SHA384, out, data, len);
}

void sp_hmac_sha256(uint8_t out[SP_SHA256_LEN], const void *key,
		    size_t key_len, const void *data, size_t len)
{
	unsigned int n = SP_SHA256_LEN;
	if (!HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n))
		sp_oom();
}

char *sp_sha256_digest_str(const void *data, size_t len)
{
	uint8_t d[SP_SHA256_LEN];
	char hex[2 * SP_SHA256_LEN + 1];
	sp_sha256(d, data, len);
	sp_hex_encode(hex, d, sizeof(d));
	return sp_xasprintf("sha256:%s", hex);
}

int sp_sha256_file(uint8_t out[SP_SHA256_LEN], const char *path, sp_err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sp_error_sys(err, errno, "open `%s`", path);
	sp_hash *h = sp_hash_new(SP_HASH_SHA256);
	uint8_t buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			sp_hash_free(h);
			return sp_error_sys(err, e, "read `%s`", path);
		}
		if (n == 0)
			break;
		sp_hash_update(h, buf, (size_t)n);
	}
	sp_hash_final(h, out);
	sp_hash_free(h);
	return 0;
}
