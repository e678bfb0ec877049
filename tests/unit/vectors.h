/* SPDX-License-Identifier: Apache-2.0 */
/* Test vectors under tests/vectors: read whole, a `.hex` file's first line
 * decoded to bytes. Include after <cmocka.h>. */
#ifndef SEALPOD_TEST_VECTORS_H
#define SEALPOD_TEST_VECTORS_H

#include <string.h>

#include "sealpod/codec.h"
#include "sealpod/file.h"

static inline uint8_t *load_vector(const char *path, size_t *len)
{
	uint8_t *d = NULL;
	sp_err *err = NULL;
	if (sp_read_file(&d, len, path, 1 << 20, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	if (strstr(path, ".hex")) {
		uint8_t *raw = NULL;
		size_t n = 0;
		char *s = (char *)d;
		s[strcspn(s, "\r\n")] = '\0';
		assert_int_equal(sp_hex_decode_alloc(&raw, &n, s, &err), 0);
		free(d);
		*len = n;
		return raw;
	}
	return d;
}

#endif
