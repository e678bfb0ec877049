/* SPDX-License-Identifier: Apache-2.0 */
/* Hex and base64 (standard and URL-safe). */
#ifndef SEALPOD_CODEC_H
#define SEALPOD_CODEC_H

#include "sealpod/common.h"
#include "sealpod/err.h"

/* The value of one hex digit (either case), or -1 if c is not one. */
static inline int sp_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Writes 2*len lowercase hex digits and a NUL into out (2*len+1 bytes). */
SP_PUBLIC void sp_hex_encode(char *out, const void *data, size_t len);
/* Returns a new string. */
SP_PUBLIC char *sp_hex_dup(const void *data, size_t len);
/* Decodes exactly out_len bytes from hex (upper or lower case). */
SP_PUBLIC int sp_hex_decode(uint8_t *out, size_t out_len, const char *hex,
			    sp_err **err);
/* Decodes any even-length hex string into a new buffer. */
SP_PUBLIC int sp_hex_decode_alloc(uint8_t **out, size_t *out_len,
				  const char *hex, sp_err **err);

enum sp_b64_variant {
	SP_B64_STD = 0,    /* '+' '/', padded */
	SP_B64_URL = 1,    /* '-' '_', unpadded */
};
SP_PUBLIC char *sp_base64_encode(const void *data, size_t len, int variant);
/* Accepts padded or unpadded input of the given alphabet; rejects
 * anything else (whitespace included). */
SP_PUBLIC int sp_base64_decode(uint8_t **out, size_t *out_len, const char *in,
			       size_t in_len, int variant, sp_err **err);

#endif
