/* SPDX-License-Identifier: Apache-2.0 */
/* Hex and base64 decoders: decode, re-encode, and decode again must agree. */
#include <string.h>

#include "sealpod/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = sp_xstrndup((const char *)data, size);
	for (int variant = SP_B64_STD; variant <= SP_B64_URL; variant++) {
		uint8_t *out = NULL;
		size_t n = 0;
		sp_err *err = NULL;
		if (sp_base64_decode(&out, &n, s, strlen(s), variant, &err) == 0) {
			char *again = sp_base64_encode(out, n, variant);
			uint8_t *out2 = NULL;
			size_t n2 = 0;
			if (sp_base64_decode(&out2, &n2, again, strlen(again), variant, NULL) != 0 ||
			    n2 != n || memcmp(out, out2, n) != 0)
				abort();
			free(again);
			free(out2);
			free(out);
		} else {
			sp_err_free(err);
		}
	}
	uint8_t *bin = NULL;
	size_t blen = 0;
	sp_err *err = NULL;
	if (sp_hex_decode_alloc(&bin, &blen, s, &err) == 0) {
		char *hex = sp_hex_dup(bin, blen);
		if (strlen(hex) != strlen(s))
			abort();
		free(hex);
		free(bin);
	} else {
		sp_err_free(err);
	}
	free(s);
	return 0;
}
