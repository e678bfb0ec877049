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

/* Mounts the runtime adds to every container; they carry no pod data.
 * Bind sources must be the agent's own files for them. */
struct sp_std_mount {
	const char *dest;
	const char *type, *type2;
	const char *bind_src; /* prefix a bind's source must have, NULL = no bind */
	bool ro_unless_privileged;
};
#define SP_STD_MOUNTS 11
extern const struct sp_std_mount sp_policy_std_mounts[SP_STD_MOUNTS];
/* Options a volume's bind mount may carry (NULL-terminated). */
extern const char *const sp_policy_volume_opts[];

/* ---- the fast path for CreateContainer (eval_fast.c, jtok.c) ---- */

/* A bounded JSON tokenizer that decodes strings in place in its own copy of
 * the input and allocates nothing per value. It accepts a strict subset of
 * what jansson accepts (ASCII strings, integers in int64, no duplicate
 * keys, depth <= 32) and refuses the rest, so that whatever it accepts
 * means exactly what jansson would have made of it. */
enum sp_jt_type { SP_JT_OBJ = 1, SP_JT_ARR, SP_JT_STR, SP_JT_INT, SP_JT_TRUE,
		  SP_JT_FALSE, SP_JT_NULL };
struct sp_jt {
	uint8_t type;
	uint32_t end; /* index of the first token after this value */
	uint32_t len; /* STR: bytes; OBJ: pairs; ARR: elements */
	union {
		const char *s; /* STR: NUL-terminated */
		int64_t i;     /* INT */
	};
};
struct sp_jt_doc {
	struct sp_jt *t; /* t[0] is the top-level object; an object's
			    children are key, value, key, value... */
	size_t n, cap;
	void *mem; /* heap, when the scratch space was too small */
};
/* 0, or -1 when the input is outside the subset (not necessarily
 * invalid). scratch (may be NULL) is used first, aligned for sp_jt. */
int sp_jt_parse(struct sp_jt_doc *d, const void *data, size_t len, void *scratch,
		size_t scratch_len);
void sp_jt_free(struct sp_jt_doc *d);

/* True only when the spec is certainly allowed for c: every check of
 * sp_eval_create_container's spec part passes. False means "not proven":
 * the caller runs the full evaluator, which decides and explains. */
bool sp_eval_spec_fast(const struct pcontainer *c, const void *spec, size_t len);
/* The full check of a CreateContainer oci_spec (jansson), which explains
 * its denials. */
bool sp_eval_spec_full(const struct pcontainer *c, struct sp_eval *e, const void *spec,
		       size_t len);
