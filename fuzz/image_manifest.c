/* SPDX-License-Identifier: Apache-2.0 */
/* Manifest, index and config parsing, image references and the HTTP
 * response head parser, on arbitrary bytes. */
#include <string.h>

#include "image/http.h"
#include "image/image-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sp_err *err = NULL;
	int kind;
	if (img_manifest_kind(data, size, NULL, &kind, &err) == 0) {
		if (kind == IMG_KIND_MANIFEST) {
			struct img_manifest m;
			if (img_manifest_parse(&m, data, size, &err) == 0) {
				for (size_t i = 0; i < m.nlayers; i++)
					if (!sp_image_digest_valid(m.layers[i].digest))
						abort();
				img_manifest_clear(&m);
			}
		} else {
			struct img_desc d = {0};
			if (img_index_select(&d, data, size, &err) == 0)
				img_desc_clear(&d);
		}
	}
	sp_err_clear(&err);
	char **ids = NULL;
	if (img_config_diff_ids(&ids, data, size, &err) == 0)
		sp_strv_freep(&ids);
	sp_err_clear(&err);
	char *s = sp_xstrndup((const char *)data, size);
	sp_image_config *c = NULL;
	if (sp_image_config_get(&c, s, &err) == 0)
		sp_image_config_free(c);
	sp_err_clear(&err);
	sp_image_ref *ref = NULL;
	if (sp_image_ref_parse(&ref, s, &err) == 0) {
		char *str = sp_image_ref_str(ref);
		sp_image_ref *again = NULL;
		if (sp_image_ref_parse(&again, str, NULL) != 0 ||
		    strcmp(again->registry, ref->registry) ||
		    strcmp(again->repository, ref->repository))
			abort();
		sp_image_ref_free(again);
		free(str);
		sp_image_ref_free(ref);
	}
	sp_err_clear(&err);
	struct img_http_resp resp;
	if (img_http_parse_head(&resp, s, strlen(s), &err) == 0)
		img_http_resp_clear(&resp);
	sp_err_clear(&err);
	free(s);
	return 0;
}
