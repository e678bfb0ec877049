/* SPDX-License-Identifier: Apache-2.0 */
/* Capabilities by name (libcap) and their application in the child:
 * the bounding set is dropped while still privileged, the other sets
 * after the uid change (with PR_SET_KEEPCAPS in between). An absent
 * process.capabilities, or an absent set, is an EMPTY set (as in runc):
 * never "leave the caller's", which for the agent is nearly all of them. */
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include "oci-internal.h"
#include "sealpod/log.h"

int oci_caps_parse(uint64_t *out, const json_t *arr, const char *path,
		   sp_err **err)
{
	size_t i;
	json_t *e;
	*out = 0;
	if (json_array_size(arr) > 256)
		return sp_error(err, SP_ERR_LIMIT, "%s: too many entries", path);
	json_array_foreach(arr, i, e) {
		const char *name = json_string_value(e);
		cap_value_t v;
		if (!name)
			return sp_error(err, SP_ERR_PARSE, "%s[%zu]: expected a string", path, i);
		/* libcap wants lower case without the prefix or with it; it
		 * accepts "cap_chown" and "CAP_CHOWN" alike. */
		if (strncasecmp(name, "CAP_", 4) != 0 || cap_from_name(name, &v) != 0 ||
		    v < 0 || v > 63)
			return sp_error(err, SP_ERR_PARSE,
					"%s[%zu]: unknown capability `%s`", path, i, name);
		*out |= 1ULL << v;
	}
	return 0;
}

static cap_value_t last_cap(void)
{
	static cap_value_t last = -1;
	if (last < 0)
		last = cap_max_bits() - 1;
	return last;
}

int oci_caps_drop_bounding(const struct oci_caps *c, char *msg, size_t n)
{
	for (cap_value_t v = 0; v <= last_cap(); v++) {
		if (c->bounding & (1ULL << v))
			continue;
		if (prctl(PR_CAPBSET_DROP, v, 0, 0, 0) < 0 && errno != EINVAL)
			return oci_msg(msg, n, errno, "process.capabilities.bounding: dropping %s",
				       cap_to_name(v));
	}
	return 0;
}

int oci_caps_apply(const struct oci_caps *c, char *msg, size_t n)
{
	cap_t caps = cap_init();
	if (!caps)
		sp_oom();
	for (cap_value_t v = 0; v <= last_cap() && v < 64; v++) {
		uint64_t bit = 1ULL << v;
		if (c->effective & bit)
			cap_set_flag(caps, CAP_EFFECTIVE, 1, &v, CAP_SET);
		if (c->permitted & bit)
			cap_set_flag(caps, CAP_PERMITTED, 1, &v, CAP_SET);
		if (c->inheritable & bit)
			cap_set_flag(caps, CAP_INHERITABLE, 1, &v, CAP_SET);
	}
	int r = cap_set_proc(caps);
	int e = errno;
	cap_free(caps);
	if (r < 0)
		return oci_msg(msg, n, e, "process.capabilities: setting the capability sets");
	if (cap_reset_ambient() < 0 && errno != EINVAL)
		return oci_msg(msg, n, errno, "process.capabilities.ambient: reset");
	/* An ambient capability that isn't also permitted and inheritable
	 * can't be raised; runc and crun skip it, and specs rely on that. */
	for (cap_value_t v = 0; v <= last_cap() && v < 64; v++)
		if ((c->ambient & (1ULL << v)) && (c->permitted & c->inheritable & (1ULL << v)))
			if (cap_set_ambient(v, CAP_SET) < 0)
				return oci_msg(msg, n, errno, "process.capabilities.ambient: raising %s",
					       cap_to_name(v));
	return 0;
}

json_t *oci_caps_all(void)
{
	json_t *a = json_array();
	for (cap_value_t v = 0; v <= last_cap() && v < 64; v++) {
		char *name = cap_to_name(v);
		if (!name)
			continue;
		for (char *p = name; *p; p++)
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		json_array_append_new(a, json_string(name));
		cap_free(name);
	}
	return a;
}
