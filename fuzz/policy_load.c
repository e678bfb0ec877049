/* SPDX-License-Identifier: Apache-2.0 */
/* Policy documents from the host (SetPolicy): load, and if they load,
 * re-serialise, reload and build every container's spec. */
#include <string.h>

#include "sealpod/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sp_policy *p = NULL;
	sp_err *err = NULL;
	json_error_t je;
	/* Also accept non-canonical spellings so the schema checks get fuzzed. */
	json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	if (sp_policy_load(&p, data, size, &err) < 0)
		sp_err_clear(&err);
	sp_policy_free(p);
	p = NULL;
	if (doc && sp_policy_load_json(&p, doc, &err) == 0) {
		size_t len;
		const char *b = sp_policy_bytes(p, &len);
		sp_policy *q = NULL;
		if (sp_policy_load(&q, b, len, NULL) != 0)
			abort(); /* canonical bytes must reload */
		sp_policy_free(q);
		for (size_t i = 0; i < sp_policy_container_count(p); i++) {
			json_t *spec = NULL;
			if (sp_policy_container_spec(p, i, NULL, &spec, &err) == 0)
				json_decref(spec);
			else
				sp_err_clear(&err);
		}
		free(sp_policy_explain(p));
		(void)sp_policy_registry_ca(p, "https://10.0.2.2:5443/");
	} else {
		sp_err_clear(&err);
	}
	sp_policy_free(p);
	json_decref(doc);
	return 0;
}
