/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes YAML into the generator (images resolved by a stub), and the
 * re-emitted YAML must parse again. */
#include <string.h>

#include "sealpod/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int stub(void *ctx, const char *ref, sp_policy_image *out, sp_err **err)
{
	memset(out, 0, sizeof(*out));
	out->reference = sp_xstrdup("img@sha256:0000000000000000000000000000000000000000000000000000000000000000");
	out->cmd = sp_xcalloc(2, sizeof(char *));
	out->cmd[0] = sp_xstrdup("/bin/sh");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *docs = NULL;
	sp_err *err = NULL;
	if (sp_yaml_to_json(data, size, &docs, &err) == 0)
		json_decref(docs);
	else
		sp_err_clear(&err);
	/* With a broker, so that sealed values and io.sealpod.policy/sealed
	 * reach the generator's checks. */
	static json_t *kbs;
	if (!kbs)
		kbs = json_pack("{s:s}", "url", "http://10.0.2.2:8080");
	sp_policy_gen_opts o = {.version = 1, .resolve = stub, .kbs = kbs};
	char *out = NULL, *hashes = NULL;
	if (sp_policy_generate_yaml(data, size, &o, &out, &hashes, &err) == 0) {
		if (sp_yaml_to_json(out, strlen(out), &docs, &err) != 0)
			abort(); /* what we emit must parse */
		json_decref(docs);
		free(out);
		free(hashes);
	} else {
		sp_err_clear(&err);
	}
	return 0;
}
