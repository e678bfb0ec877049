/* SPDX-License-Identifier: Apache-2.0 */
/* SHA-256, SHA-384 and HMAC-SHA-256 through OpenSSL. */
#ifndef SEALPOD_HASH_H
#define SEALPOD_HASH_H

#include "sealpod/common.h"
#include "sealpod/err.h"

#define SP_SHA256_LEN 32
#define SP_SHA384_LEN 48

enum sp_hash_alg { SP_HASH_SHA256 = 1, SP_HASH_SHA384 = 2, SP_HASH_SHA512 = 3 };

SP_PUBLIC void sp_sha256(uint8_t out[SP_SHA256_LEN], const void *data,
			 size_t len);
SP_PUBLIC void sp_sha384(uint8_t out[SP_SHA384_LEN], const void *data,
			 size_t len);
SP_PUBLIC void sp_hmac_sha256(uint8_t out[SP_SHA256_LEN], const void *key,
			      size_t key_len, const void *data, size_t len);
/* "sha256:<hex>" for a blob, as OCI digests are written. */
SP_PUBLIC char *sp_sha256_digest_str(const void *data, size_t len);
/* SHA-256 of a file's contents. */
SP_PUBLIC int sp_sha256_file(uint8_t out[SP_SHA256_LEN], const char *path,
			     sp_err **err);

/* Streaming hash. */
typedef struct sp_hash sp_hash;
SP_PUBLIC sp_hash *sp_hash_new(int alg);
SP_PUBLIC void sp_hash_update(sp_hash *h, const void *data, size_t len);
/* Writes the digest (32, 48 or 64 bytes); returns its length. */
SP_PUBLIC size_t sp_hash_final(sp_hash *h, uint8_t *out);
SP_PUBLIC void sp_hash_free(sp_hash *h);

#endif
