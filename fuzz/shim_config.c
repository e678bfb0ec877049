/* SPDX-License-Identifier: Apache-2.0 */
/* What the shim parses from the node: the runtime configuration file and
 * the runtime options containerd passes (a protobuf Any holding
 * runtimeoptions.v1.Options); and containerd's config.json as the guest
 * spec filter reads it. The input is tried as each. */
#include <string.h>

#include "containerd_runtimeoptions.pb-c.h"
#include "containerd_types.pb-c.h"
#include "sealpod/json.h"
#include "sealpod/sandbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sp_runtime_config *c = NULL;
	sp_err *err = NULL;
	if (sp_runtime_config_parse(&c, data, size, "fuzz", &err) == 0) {
		if (!c->backend || !c->tee || !c->state_dir || !c->vcpus)
			abort();
		sp_runtime_config_free(c);
	} else {
		if (!err || !err->msg)
			abort();
		sp_err_free(err);
	}

	json_t *spec = NULL;
	if (sp_json_parse(&spec, data, size, "fuzz", NULL) == 0) {
		json_t *out = NULL;
		if (sp_sandbox_guest_spec(&out, spec, NULL) == 0) {
			/* Nothing host-side survives. */
			if (json_object_get(out, "hooks") ||
			    json_object_get(json_object_get(out, "linux"), "cgroupsPath"))
				abort();
			json_decref(out);
		}
		json_decref(spec);
	}

	Containerd__V1__Types__Any *any = containerd__v1__types__any__unpack(NULL, size, data);
	if (any) {
		Runtimeoptions__V1__Options *o =
			runtimeoptions__v1__options__unpack(NULL, any->value.len, any->value.data);
		if (o)
			runtimeoptions__v1__options__free_unpacked(o, NULL);
		containerd__v1__types__any__free_unpacked(any, NULL);
	}
	return 0;
}
