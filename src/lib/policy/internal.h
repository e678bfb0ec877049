/* SPDX-License-Identifier: Apache-2.0 */
/* The policy module's private structures: a loaded policy is the JSON
 * document (kept alive) plus per-container views into it, compiled once
 * so that every evaluation only compares. */
#ifndef SEALPOD_POLICY_INTERNAL_H
#define SEALPOD_POLICY_INTERNAL_H

#include <regex.h>

#include "sealpod/policy.h"

/* The five capability sets, in runtime-spec order. */
#define SP_CAP_SETS 5
extern const char *const sp_policy_cap_sets[SP_CAP_SETS];

/* Namespace types sealpod knows, in runtime-spec spelling. */
#define SP_NS_TYPES 7
extern const char *const sp_policy_ns_types[SP_NS_TYPES];

/* Where the agent keeps pod volumes: <root>/<kind>/<volume>. */
#define SP_POLICY_VOLUME_ROOT "/run/sealpod/sandbox"

struct env_rule {
	const char *name;    /* NULL when name_pattern is used */
	regex_t name_re;
	bool has_name_re;
	const char *value;   /* exact value, or NULL */
	regex_t value_re;
	bool has_value_re;
	const char *pattern; /* source text of value_re, for messages */
	const char *name_pattern;
	const char *from;
	bool secret;         /* never echo the value */
	bool optional;
	/* "sealed": the broker resources ("repo/type/tag") a sealed value of
	 * this variable may name; NULL when the variable is not sealed. */
	const json_t *sealed;
};

struct mount_rule {
	const char *destination;
	const char *kind;   /* emptyDir, configMap, secret, projected, downwardAPI, hostPath */
	const char *volume;
	char *source;       /* the source the agent uses (computed) */
	bool read_only;
};

struct pcontainer {
	const json_t *j;
	const char *name;
	bool init;
	const char *image;
	const char *digest; /* "sha256:<hex>" inside image */
	const json_t *args;
	struct env_rule *env;
	size_t n_env;
	const char *cwd;
	int64_t uid, gid;
	const json_t *groups;
	const json_t *caps[SP_CAP_SETS];
	bool privileged, no_new_privs, terminal, read_only_root, logs, stdin_;
	struct mount_rule *mounts;
	size_t n_mounts;
	const char *ns[SP_NS_TYPES]; /* NULL, "new" or "pod" */
	const json_t *sysctls;
	const json_t *devices;
	char *seccomp;      /* canonical JSON, or NULL for none */
	const char *apparmor;
	const json_t *masked_paths;
	const json_t *readonly_paths;
	const json_t *exec;
	/* linux.resources bounds (eval_resources.c); -1 = not recorded. */
	int64_t mem_request, mem_limit, cpu_request, cpu_limit; /* bytes, millicores */
	const json_t *cgroup_keys; /* resources.unified keys the host may set */
	/* The runtime-spec the policy builds (sp_policy_spec_build) with an
	 * empty env: what a CreateContainer's oci_spec must be, but for the
	 * runtime-variable fields (docs/policy.md). */
	json_t *tmpl;
	/* Its compact serialisation around the env entries (NULL: none). */
	char *fast_pre, *fast_post;
	size_t fast_pre_len, fast_post_len;
};

/* policy.registries[i] (registries.c). */
struct policy_registry {
	const char *host; /* "host[:port]" as the guest reaches it */
	const char *ca;   /* PEM bundle */
};

struct sp_policy {
	json_t *doc;
	char *bytes;
	size_t len;
	uint8_t hash[SP_SHA256_LEN];
	const char *pod_name, *pod_namespace;
	bool share_pid;
	/* requests */
	const json_t *copy_file;
	/* requests.sealed_files: {copy_file dir: {key: [repo/type/tag]}} */
	const json_t *sealed_files;
	bool network, report, set_policy_again, stats, list_processes,
		update_container;
	struct pcontainer *c;
	size_t n_c;
	struct policy_registry *regs;
	size_t n_regs;
	/* policy.kbs: the key broker (NULL when absent). */
	const char *kbs_url, *kbs_ca;
};

int sp_policy_load_registries(sp_policy *p, const json_t *regs, sp_err **err);
int sp_policy_load_kbs(sp_policy *p, const json_t *kbs, sp_err **err);
/* An https://host[:port] URL whose host the policy lists. */
bool sp_policy_registry_listed(const sp_policy *p, const char *url);

/* Lexical path normalisation: collapses "//" and "/./"; fails (NULL) on a
 * relative path or any ".." component. */
char *sp_policy_path_normalize(const char *path);

/* Renders a JSON value compactly for messages, cut at ~200 bytes. */
char *sp_policy_render(const json_t *v);

/* Anchored regex match of a whole string. */
bool sp_policy_re_match(const regex_t *re, const char *s);

#endif

/* ---- evaluation helpers shared by eval*.c ---- */
#include "agent.pb-c.h"

struct sp_eval {
	sp_policy_decision *d;
	const char *req; /* request name for messages */
};

/* Records a denial (first one wins), taking ownership of expected and got;
 * returns false so checks can `return deny(...)`. */
bool sp_eval_deny(struct sp_eval *e, char *expected, char *got,
		  const char *pathfmt, ...) SP_PRINTF(4, 5);

/* An id the host chose (container or exec id): [A-Za-z0-9][A-Za-z0-9_.-]*. */
bool sp_policy_id_ok(const char *id);
/* A registry storage's source: "https://host[:port]" or "http://host[:port]"
 * (the agent's image module allows plain http only to the host through QEMU
 * user networking, 10.0.2.2, and loopback); nothing else in the URL. */
bool sp_eval_registry_ok(const sp_policy *p, const char *url);
/* What a registry storage may be under p, for denials (new string). */
char *sp_eval_registry_expected(const sp_policy *p);

bool sp_eval_create_container(const sp_policy *p, struct sp_eval *e,
			      const Sealpod__Agent__V1__CreateContainerRequest *r,
			      int *index);
bool sp_eval_exec_process(const sp_policy *p, struct sp_eval *e,
			  const struct pcontainer *c,
			  const Sealpod__Agent__V1__ExecProcessRequest *r);
/* Is the env entry "K=V" allowed by c's rules? On deny, records it. */
bool sp_eval_env_entry(const struct pcontainer *c, struct sp_eval *e,
		       const char *entry, const char *path, int *rule_out);

/* The runtime-spec the policy builds for c (spec.c), taking env. */
json_t *sp_policy_spec_build(const struct pcontainer *c, json_t *env /* stolen */);
/* Fills c->tmpl and the fast path's bytes (at load). */
int sp_policy_spec_template(struct pcontainer *c);

/* True only when the spec is certainly allowed for c: it is byte for byte
 * the policy's own serialised spec with env entries the rules allow.
 * False means "not proven": the caller runs the full check, which decides
 * and explains. */
bool sp_eval_spec_fast(const struct pcontainer *c, const void *spec, size_t len);
/* The full check of a CreateContainer oci_spec (jansson), which explains
 * its denials. */
bool sp_eval_spec_full(const struct pcontainer *c, struct sp_eval *e, const void *spec,
		       size_t len);

/* linux.resources (eval_resources.c): `res` may be NULL (absent). In a
 * CreateContainer (update false) devices must equal the policy's rules
 * (`devices`); an UpdateContainer may not touch them. */
bool sp_eval_resources(const struct pcontainer *c, struct sp_eval *e, const json_t *res,
		       const json_t *devices, bool update, const char *path);
/* Loads containers[i].resources into c. */
int sp_policy_load_resources(struct pcontainer *c, const json_t *res, const char *path,
			     sp_err **err);
/* The runtime-variable fields of a spec (docs/policy.md), for tests:
 * NULL-terminated paths relative to the spec ("process.env"). */
extern const char *const sp_policy_variable_fields[];
extern const char *const sp_policy_exec_variable_fields[];
