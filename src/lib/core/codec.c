/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "sealpod/codec.h"

static const char hexdigits[] = "0123456789abcdef";

void sp_hex_encode(char *out, const void *data, size_t len)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hexdigits[p[i] >> 4];
		out[2 * i + 1] = hexdigits[p[i] & 15];
	}
	out[2 * len] = 0;
}

char *sp_hex_dup(const void *data, size_t len)
{
	size_t n;
	if (!sp_mul_size(&n, len, 2) || !sp_add_size(&n, n, 1))
		sp_oom();
	char *s = sp_xmalloc(n);
	sp_hex_encode(s, data, len);
	return s;
}

int sp_hex_decode(uint8_t *out, size_t out_len, const char *hex, sp_err **err)
{
	size_t n = strlen(hex);
	if (n != out_len * 2)
		return sp_error(err, SP_ERR_PARSE,
				"hex string has %zu digits, expected %zu", n,
				out_len * 2);
	for (size_t i = 0; i < out_len; i++) {
		int hi = sp_hex_digit(hex[2 * i]), lo = sp_hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return sp_error(err, SP_ERR_PARSE,
					"not a hex digit at position %zu",
					hi < 0 ? 2 * i : 2 * i + 1);
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int sp_hex_decode_alloc(uint8_t **out, size_t *out_len, const char *hex,
			sp_err **err)
{
	size_t n = strlen(hex);
	if (n % 2)
		return sp_error(err, SP_ERR_PARSE,
				"hex string has an odd number of digits (%zu)", n);
	uint8_t *buf = sp_xmalloc(n / 2);
	if (sp_hex_decode(buf, n / 2, hex, err) < 0) {
		free(buf);
		return (*err)->code;
	}
	*out = buf;
	*out_len = n / 2;
	return 0;
}

static const char b64std[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *sp_base64_encode(const void *data, size_t len, int variant)
{
	const char *alpha = variant == SP_B64_URL ? b64url : b64std;
	const uint8_t *p = data;
	size_t n;
	if (!sp_add_size(&n, len, 2) || !sp_mul_size(&n, n / 3, 4) ||
	    !sp_add_size(&n, n, 1))
		sp_oom();
	char *out = sp_xmalloc(n), *o = out;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = alpha[v >> 18];
		*o++ = alpha[(v >> 12) & 63];
		*o++ = alpha[(v >> 6) & 63];
		*o++ = alpha[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		*o++ = alpha[v >> 18];
		*o++ = alpha[(v >> 12) & 63];
		if (i + 1 < len)
			*o++ = alpha[(v >> 6) & 63];
		else if (variant == SP_B64_STD)
			*o++ = '=';
		if (variant == SP_B64_STD)
			*o++ = '=';
	}
	*o = 0;
	return out;
}

static int b64val(char c, int variant)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (variant == SP_B64_URL)
		return c == '-' ? 62 : c == '_' ? 63 : -1;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int sp_base64_decode(uint8_t **out, size_t *out_len, const char *in,
		     size_t in_len, int variant, sp_err **err)
{
	size_t n = in_len;
	/* Up to two '=' of padding, only at the end of a 4-aligned input. */
	size_t pad = 0;
	while (n > 0 && in[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if (pad && in_len % 4)
		return sp_error(err, SP_ERR_PARSE, "base64: bad padding");
	if (n % 4 == 1)
		return sp_error(err, SP_ERR_PARSE,
				"base64: truncated input (%zu characters)", in_len);
	uint8_t *buf = sp_xmalloc(n / 4 * 3 + 3);
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val(in[i], variant);
		if (v < 0) {
			free(buf);
			return sp_error(err, SP_ERR_PARSE,
					"base64: invalid character at position %zu", i);
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* Leftover bits must be zero (canonical encoding). */
	if (bits && (acc & ((1u << bits) - 1))) {
		free(buf);
		return sp_error(err, SP_ERR_PARSE, "base64: non-zero trailing bits");
	}
	if (pad && (n + pad) / 4 * 3 - pad != o) {
		free(buf);
		return sp_error(err, SP_ERR_PARSE, "base64: bad padding");
	}
	*out = buf;
	*out_len = o;
	return 0;
}
