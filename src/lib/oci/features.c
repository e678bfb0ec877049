/* SPDX-License-Identifier: Apache-2.0 */
/* The features document (runtime-spec features.md), for `features`. */
#include "oci-internal.h"

char *sp_oci_features_json(void)
{
	json_t *o = json_object(), *linux_ = json_object(), *ns = json_array(),
	       *hooks = json_array(), *cg = json_object();
	json_object_set_new(o, "ociVersionMin", json_string("1.0.0"));
	json_object_set_new(o, "ociVersionMax", json_string("1.2.0"));
	static const char *h[] = {"prestart", "createRuntime", "createContainer",
				  "startContainer", "poststart", "poststop"};
	for (size_t i = 0; i < SP_ARRAY_LEN(h); i++)
		json_array_append_new(hooks, json_string(h[i]));
	json_object_set_new(o, "hooks", hooks);
	json_object_set_new(o, "mountOptions", oci_mount_options_all());
	static const char *n[] = {"cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"};
	for (size_t i = 0; i < SP_ARRAY_LEN(n); i++)
		json_array_append_new(ns, json_string(n[i]));
	json_object_set_new(linux_, "namespaces", ns);
	json_object_set_new(linux_, "capabilities", oci_caps_all());
	json_object_set_new(cg, "v1", json_true());
	json_object_set_new(cg, "v2", json_true());
	json_object_set_new(cg, "systemd", json_false());
	json_object_set_new(cg, "systemdUser", json_false());
	json_object_set_new(linux_, "cgroup", cg);
	json_object_set_new(linux_, "seccomp", oci_seccomp_features());
	json_object_set_new(linux_, "apparmor", json_pack("{s:b}", "enabled", 1));
	json_object_set_new(linux_, "selinux", json_pack("{s:b}", "enabled", 0));
	json_object_set_new(linux_, "intelRdt", json_pack("{s:b}", "enabled", 0));
	json_object_set_new(o, "linux", linux_);
	json_object_set_new(o, "annotations",
			    json_pack("{s:s}", "io.sealpod.engine", "sealpod " SEALPOD_VERSION));
	char *s = json_dumps(o, JSON_INDENT(4));
	json_decref(o);
	if (!s)
		sp_oom();
	return s;
}
