/* SPDX-License-Identifier: Apache-2.0 */
/* CreateContainer's oci_spec, both ways: the input is the spec bytes. The
 * fast path (the policy's serialised spec around the env entries) may
 * allow only what the full evaluator allows. Inputs that start with the
 * policy's own prefix reach the fast path's env parsing. */
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policy_json[] =
	"{\"containers\":[{\"args\":[\"sh\",\"-c\",\"x\"],\"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_KILL\"],"
	"\"effective\":[\"CAP_CHOWN\"]},"
	"\"cwd\":\"/w\",\"env\":[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"S\",\"pattern\":\".*\",\"from\":\"secret\"},"
	"{\"name\":\"H\",\"pattern\":\"[a-z]+\"},{\"name_pattern\":\"[A-Z]+_PORT\",\"pattern\":\"[0-9]+\",\"optional\":true}],"
	"\"image\":\"x@sha256:0000000000000000000000000000000000000000000000000000000000000000\","
	"\"devices\":[{\"major\":10,\"minor\":229,\"path\":\"/dev/fuse\",\"type\":\"c\"}],"
	"\"masked_paths\":[\"/proc/kcore\"],\"readonly_paths\":[\"/proc/sys\"],"
	"\"mounts\":[{\"destination\":\"/d\",\"kind\":\"emptyDir\",\"volume\":\"d\"},"
	"{\"destination\":\"/c\",\"kind\":\"configMap\",\"volume\":\"c\",\"read_only\":true}],"
	"\"name\":\"c\",\"namespaces\":{\"mount\":\"new\",\"network\":\"pod\",\"pid\":\"new\"},"
	"\"no_new_privileges\":true,"
	"\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"action\":\"SCMP_ACT_ERRNO\",\"names\":[\"ptrace\"]}]},"
	"\"sysctls\":{\"net.ipv4.ping_group_range\":\"0 1\"},"
	"\"user\":{\"gid\":2,\"groups\":[3,4],\"uid\":1}}],\"version\":1}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static sp_policy *p;
	if (!p) {
		json_t *doc = json_loads(policy_json, 0, NULL);
		if (!doc || sp_policy_load_json(&p, doc, NULL) != 0)
			abort();
		json_decref(doc);
	}
	/* Inputs starting with '#': the policy's serialised spec around the
	 * rest in place of the env entries (the fast path's own parsing). */
	const struct pcontainer *c = &p->c[0];
	_cleanup_free_ uint8_t *buf = NULL;
	if (size && data[0] == '#' && c->fast_pre) {
		size_t n = c->fast_pre_len + (size - 1) + c->fast_post_len;
		buf = malloc(n);
		if (!buf)
			abort();
		memcpy(buf, c->fast_pre, c->fast_pre_len);
		memcpy(buf + c->fast_pre_len, data + 1, size - 1);
		memcpy(buf + c->fast_pre_len + size - 1, c->fast_post, c->fast_post_len);
		data = buf;
		size = n;
	}
	sp_policy_decision d = {0};
	struct sp_eval e = {&d, "CreateContainerRequest"};
	bool fast = sp_eval_spec_fast(&p->c[0], data, size);
	bool full = sp_eval_spec_full(&p->c[0], &e, data, size);
	if (fast && !full)
		abort(); /* the fast path passed what the full check denies */
	sp_policy_decision_clear(&d);
	return 0;
}
