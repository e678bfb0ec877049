/* SPDX-License-Identifier: Apache-2.0 */
/* What of a host runtime's config.json may reach the guest. containerd
 * writes a spec for a runc container on the host: bind mounts of host
 * files (/etc/hosts, resolv.conf, the sandbox's /dev/shm), paths of host
 * namespaces and cgroups, hooks that would run host binaries. None of it
 * means anything inside the UVM, so it is dropped here, and the guest
 * takes the root filesystem from the image it verified itself. */
#include <string.h>

#include "sealpod/json.h"
#include "sealpod/sandbox.h"

static bool is_bind(const json_t *m)
{
	const char *type = json_string_value(json_object_get(m, "type"));
	if (type && !strcmp(type, "bind"))
		return true;
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(m, "options"), i, o) {
		const char *s = json_string_value(o);
		if (s && (!strcmp(s, "bind") || !strcmp(s, "rbind")))
			return true;
	}
	return false;
}

int sp_sandbox_guest_spec(json_t **out, const json_t *host_spec, sp_err **err)
{
	if (!json_is_object(host_spec))
		return sp_error(err, SP_ERR_INVALID, "config.json: not a JSON object");
	json_t *spec = json_deep_copy(host_spec);
	if (!spec)
		sp_oom();
	json_t *root = json_object();
	json_t *ro = json_object_get(json_object_get(spec, "root"), "readonly");
	json_object_set_new(root, "path", json_string("rootfs"));
	if (json_is_true(ro))
		json_object_set_new(root, "readonly", json_true());
	json_object_set_new(spec, "root", root);
	json_object_del(spec, "hooks");

	json_t *mounts = json_object_get(spec, "mounts");
	if (json_is_array(mounts)) {
		json_t *kept = json_array();
		size_t i;
		json_t *m;
		json_array_foreach(mounts, i, m) {
			if (json_is_object(m) && !is_bind(m))
				json_array_append(kept, m);
		}
		json_object_set_new(spec, "mounts", kept);
	}

	json_t *linux_ = json_object_get(spec, "linux");
	if (json_is_object(linux_)) {
		json_object_del(linux_, "cgroupsPath");
		json_t *ns = json_object_get(linux_, "namespaces");
		size_t i;
		json_t *n;
		json_array_foreach(ns, i, n) {
			if (json_is_object(n))
				json_object_del(n, "path");
		}
	}
	json_t *ann = json_object_get(spec, "annotations");
	if (json_is_object(ann))
		json_object_del(ann, "io.sealpod.policy");
	*out = spec;
	return 0;
}
