/* SPDX-License-Identifier: Apache-2.0 */
/* Containers are created from the policy, not from the host's spec: the
 * agent refuses anything the policy does not describe exactly, so the
 * host builds the very spec the policy allows (sp_policy_container_spec)
 * and takes from containerd's config.json only the values the policy
 * leaves to the runtime (environment variables such as HOSTNAME). */
#include <string.h>

#include "sandbox/sandbox-config.h"
#include "sealpod/json.h"
#include "sandbox-internal.h"

#if SP_SANDBOX_HAVE_POLICY
#include "sealpod/policy.h"

static json_t *env_values(const json_t *host_spec, const char *pod_hostname)
{
	json_t *v = json_object();
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(json_object_get(host_spec, "process"), "env"), i, e) {
		const char *s = json_string_value(e);
		const char *eq = s ? strchr(s, '=') : NULL;
		if (!eq || eq == s)
			continue;
		_cleanup_free_ char *k = sp_xstrndup(s, (size_t)(eq - s));
		json_object_set_new(v, k, json_string(eq + 1));
	}
	const char *host = json_string_value(json_object_get(host_spec, "hostname"));
	if (!host || !*host)
		host = pod_hostname; /* `ctr run` sets none: the pod's */
	if (host && !json_object_get(v, "HOSTNAME"))
		json_object_set_new(v, "HOSTNAME", json_string(host));
	return v;
}

int sp_sandbox_policy_container(sp_sandbox *sb, const char *name,
				const json_t *host_spec, json_t **spec, char **image,
				char **resolved_name, sp_err **err)
{
	sp_policy *p = NULL;
	if (sp_policy_load(&p, sb->policy, sb->policy_len, err) < 0)
		return sp_error_wrap(err, "pod %s: policy", sb->id);
	int rc = 0;
	int idx = -1;
	_cleanup_json_ json_t *values = NULL;
	const json_t *doc = sp_policy_json(p);
	json_t *containers = json_object_get(doc, "containers");
	if (name && *name) {
		idx = sp_policy_container_find(p, name);
	} else if (sp_policy_container_count(p) == 1) {
		idx = 0;
	}
	if (idx < 0) {
		rc = sp_error(err, SP_ERR_DENIED,
			      "pod %s: the policy has no container named \"%s\"; name the container as the policy does (CRI metadata name, or annotation io.sealpod.container-name)",
			      sb->id, name ? name : "");
		goto out;
	}
	json_t *entry = json_array_get(containers, (size_t)idx);
	const char *img = json_string_value(json_object_get(entry, "image"));
	const char *cname = json_string_value(json_object_get(entry, "name"));
	values = env_values(host_spec, sb->hostname);
	if (sp_policy_container_spec(p, (size_t)idx, values, spec, err) < 0) {
		rc = sp_error_wrap(err, "pod %s: container %s", sb->id, cname ? cname : "?");
		goto out;
	}
	*image = sp_xstrdup(img ? img : "");
	*resolved_name = sp_xstrdup(cname ? cname : "");
out:
	sp_policy_free(p);
	return rc;
}
#else
int sp_sandbox_policy_container(sp_sandbox *sb, const char *name,
				const json_t *host_spec, json_t **spec, char **image,
				char **resolved_name, sp_err **err)
{
	return sp_error(err, SP_ERR_UNSUPPORTED, "built without the policy module");
}
#endif
