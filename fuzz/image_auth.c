/* SPDX-License-Identifier: Apache-2.0 */
/* Registry auth files (containers-auth.json, docker config.json) on
 * arbitrary bytes, looked up for a few references. */
#include <string.h>

#include "sealpod/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const refs[] = {
		"busybox",
		"quay.io/org/app:1",
		("127.0.0.1:5000/x/y@sha256:"
		 "0000000000000000000000000000000000000000000000000000000000000000"),
	};
	for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
		sp_image_ref *ref = NULL;
		if (sp_image_ref_parse(&ref, refs[i], NULL) < 0)
			abort();
		char *user = NULL, *pass = NULL;
		sp_err *err = NULL;
		int r = sp_image_auth_parse(data, size, ref, &user, &pass, &err);
		if (r == 0 && (!user) != (!pass))
			abort();
		if (r < 0 && (user || pass || !err))
			abort();
		free(user);
		free(pass);
		sp_err_free(err);
		sp_image_ref_free(ref);
	}
	return 0;
}
