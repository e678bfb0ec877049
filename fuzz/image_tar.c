/* SPDX-License-Identifier: Apache-2.0 */
/* The tar reader on arbitrary bytes: every entry, its data, its name
 * through the path cleaner. */
#include <stdbool.h>
#include <string.h>

#include "image/image-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A ".." component anywhere; "..name" is an ordinary file name (the first
 * campaign's only image_tar finding was this check being too strict). */
static bool dotdot_component(const char *p)
{
	size_t n = strlen(p);
	return !strcmp(p, "..") || !strncmp(p, "../", 3) || strstr(p, "/../") ||
	       (n >= 3 && !strcmp(p + n - 3, "/.."));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	img_stream *in = img_mem_stream(data, size);
	img_tar *t = img_tar_new(in);
	const struct img_tar_entry *e;
	sp_err *err = NULL;
	uint8_t buf[4096];
	for (int i = 0; i < 10000; i++) {
		int r = img_tar_next(t, &e, &err);
		if (r <= 0)
			break;
		char *clean = img_clean_path(e->path, NULL);
		if (clean && (clean[0] == '/' || dotdot_component(clean)))
			abort();
		free(clean);
		if (e->linkname)
			free(img_clean_path(e->linkname, NULL));
		uint64_t got = 0;
		ssize_t n;
		while ((n = img_tar_read(t, buf, sizeof(buf), &err)) > 0)
			got += (uint64_t)n;
		if (n < 0)
			break;
		if (got != e->size)
			abort();
	}
	sp_err_free(err);
	img_tar_free(t);
	img_stream_close(in);
	return 0;
}
