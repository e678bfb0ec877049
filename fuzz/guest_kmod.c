/* SPDX-License-Identifier: Apache-2.0 */
/* The guest image builder's parsers of host files: a bzImage's setup
 * header (kernel release) and modules.dep / modules.builtin. The first
 * byte picks which; the rest is the input. Any resolved order must list
 * each module once. */
#include <string.h>

#include "sealpod/guest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *in = data + 1;
	size_t n = size - 1;
	if (data[0] & 1) {
		char *rel = NULL;
		if (sp_guest_kernel_release(&rel, in, n, NULL) == 0) {
			if (!rel[0] || strchr(rel, ' '))
				abort();
			free(rel);
		}
		return 0;
	}
	/* modules.dep, then after a NUL (if any) modules.builtin. */
	const uint8_t *nul = memchr(in, 0, n);
	size_t dep_len = nul ? (size_t)(nul - in) : n;
	const char *builtin = nul ? (const char *)nul + 1 : NULL;
	size_t builtin_len = nul ? n - dep_len - 1 : 0;
	const char *names[] = {"virtio_console", "virtio-rng", "a", "dm_verity", ""};
	char **paths = NULL, **status = NULL;
	if (sp_guest_resolve_modules(&paths, &status, (const char *)in, dep_len, builtin,
				     builtin_len, names, SP_ARRAY_LEN(names), NULL) == 0) {
		for (size_t i = 0; paths[i]; i++)
			for (size_t j = i + 1; paths[j]; j++)
				if (!strcmp(paths[i], paths[j]))
					abort();
		for (size_t i = 0; i < SP_ARRAY_LEN(names); i++)
			if (!status[i])
				abort();
		sp_strv_freep(&paths);
		sp_strv_freep(&status);
	}
	return 0;
}
