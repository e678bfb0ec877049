/* SPDX-License-Identifier: Apache-2.0 */
/* Sealed secrets in a container's env (docs/agent.md, "Sealed secrets").
 * The policy decided first: a variable it marks sealed carries a sealed
 * value naming one of its listed resources, and no other variable carries
 * one (docs/policy.md, "Sealed values"). CreateContainer then unseals each
 * marked variable through the KBS client (attestation with this guest's
 * TEE, the broker the policy names) and gives the engine the secret; the
 * host keeps only the sealed form. The secrets are kept with the container
 * so that an exec (whose env the host sends as the container's, sealed
 * form included) gets them too, without going back to the broker. */
#include <string.h>

#include "agent_internal.h"
#include "sealpod/log.h"
#include "sealpod/sealed.h"
#ifdef SP_AGENT_HAVE_POLICY
#include "sealpod/policy.h"
#endif

/* Per broker request, as the workload endpoint. */
#define UNSEAL_TIMEOUT_S 10

struct pending {
	size_t pos;         /* index in process.env */
	char *name;
	char *sealed;       /* the value as the host sent it */
	const json_t *resources;
};

#ifdef SP_AGENT_HAVE_POLICY
/* One sealed value: parsed, checked again against the policy's list
 * (the evaluator already did: this is the agent's own gate), unsealed.
 * The result must be usable as an environment value. */
static int unseal_one(sp_sealed_kbs *k, const struct pending *p, uint8_t **out, size_t *len,
		      sp_err **err)
{
	sp_sealed_secret s = {0};
	int r = sp_sealed_parse(&s, p->sealed, strlen(p->sealed), err);
	if (r < 0)
		return r;
	const sp_sealed_uri *u = &s.resource;
	if (s.type != SP_SEALED_VAULT || strcmp(s.provider, "kbs") || u->host[0] ||
	    !sp_policy_sealed_listed(p->resources, u->repo, u->type, u->tag))
		r = sp_error(err, SP_ERR_DENIED,
			     "sealed secret %s/%s/%s: not a resource the policy lists for this variable",
			     u->repo, u->type, u->tag);
	sp_sealed_opts o;
	sp_sealed_opts_init(&o);
	o.allowed_host = NULL; /* only kbs:///...: the policy's broker */
	if (r == 0)
		r = sp_sealed_unseal(out, len, &s, sp_sealed_kbs_fetch, k, &o, err);
	if (r == 0 && memchr(*out, 0, *len)) {
		explicit_bzero(*out, *len);
		free(*out);
		*out = NULL;
		r = sp_error(err, SP_ERR_INVALID,
			     "sealed secret %s/%s/%s: the resource contains a NUL byte and cannot be an environment value",
			     u->repo, u->type, u->tag);
	}
	sp_sealed_clear(&s);
	return r;
}
#endif

static void pending_clear(struct pending *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].sealed);
	}
	free(p);
}

int agent_unseal_env(sp_agent *a, int index, json_t *process, json_t **secrets, sp_err **err)
{
	*secrets = NULL;
#ifdef SP_AGENT_HAVE_POLICY
	json_t *env = json_object_get(process, "env");
	size_t n = json_array_size(env);
	struct pending *p = NULL;
	size_t np = 0;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(env, i));
		const char *eq = s ? strchr(s, '=') : NULL;
		if (!eq)
			continue;
		_cleanup_free_ char *name = sp_xstrndup(s, (size_t)(eq - s));
		const json_t *res = index >= 0 ? sp_policy_env_sealed(a->policy, (size_t)index, name)
					       : NULL;
		if (!res) {
			/* The evaluator refuses these; never unsealed here. */
			if (sp_sealed_is_sealed(eq + 1, strlen(eq + 1))) {
				pending_clear(p, np);
				return sp_error(err, SP_ERR_DENIED,
						"env %s: a sealed value in a variable the policy does not mark sealed",
						name);
			}
			continue;
		}
		p = sp_xrealloc(p, (np + 1) * sizeof(*p));
		p[np++] = (struct pending){i, sp_xstrdup(name), sp_xstrdup(eq + 1), res};
	}
	if (!np)
		return 0;
	struct attest_kbs_ref kr;
	if (attest_kbs_ref(a, &kr) < 0) {
		int r = sp_error(err, SP_ERR_UNSUPPORTED,
				 "env %s: a sealed secret needs the policy's key broker (policy.kbs) and a TEE to attest with",
				 p[0].name);
		pending_clear(p, np);
		return r;
	}
	/* As for a registry pull: through the pod's network when it has the
	 * guest's device (this thread enters the pod's namespace and returns
	 * below), else the uplink (QEMU user networking, the host as
	 * 10.0.2.2); natively neither is touched. */
	__attribute__((cleanup(agent_pull_net_leave))) int saved_ns = -1;
	if (agent_pull_net_enter(a, &saved_ns, err) < 0) {
		sp_error_wrap(err, "env %s: the key broker %s", p[0].name, kr.url);
		pending_clear(p, np);
		return (*err)->code;
	}
	sp_kbs_client_opts o;
	sp_kbs_client_opts_init(&o);
	o.ca_file = kr.ca_file;
	o.timeout_s = UNSEAL_TIMEOUT_S;
	sp_sealed_kbs k = {.url = kr.url, .tee = a->tee.kind, .evidence = agent_kbs_evidence,
			   .evidence_ctx = a, .opts = &o};
	json_t *out = json_object();
	int r = 0;
	/* Network I/O: without the agent lock (the caller holds a
	 * reference on its container and looks at its phase afterwards).
	 * One attestation for all the container's sealed values. */
	pthread_mutex_unlock(&a->lock);
	for (size_t i = 0; r == 0 && i < np; i++) {
		_cleanup_free_ uint8_t *plain = NULL;
		size_t len = 0;
		if ((r = unseal_one(&k, &p[i], &plain, &len, err)) < 0) {
			sp_error_wrap(err, "env %s", p[i].name);
			break;
		}
		char *entry = sp_xasprintf("%s=%.*s", p[i].name, (int)len, (const char *)plain);
		explicit_bzero(plain, len);
		json_array_set_new(env, p[i].pos, json_string(entry));
		json_object_set_new(out, p[i].name, json_pack("[s,s]", p[i].sealed, entry));
		explicit_bzero(entry, strlen(entry));
		free(entry);
		sp_log_info("env %s: sealed secret unsealed", p[i].name);
	}
	sp_sealed_kbs_clear(&k);
	pthread_mutex_lock(&a->lock);
	pending_clear(p, np);
	if (r < 0) {
		json_decref(out);
		return r;
	}
	*secrets = out;
	return 0;
#else
	(void)a;
	(void)index;
	(void)process;
	(void)err;
	return 0;
#endif
}

int agent_unseal_exec_env(const json_t *secrets, json_t *process, bool *changed, sp_err **err)
{
	*changed = false;
	json_t *env = json_object_get(process, "env");
	size_t n = json_array_size(env);
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(env, i));
		const char *eq = s ? strchr(s, '=') : NULL;
		if (!eq || !sp_sealed_is_sealed(eq + 1, strlen(eq + 1)))
			continue;
		_cleanup_free_ char *name = sp_xstrndup(s, (size_t)(eq - s));
		const json_t *rec = json_object_get(secrets, name);
		/* Only the value CreateContainer unsealed for this variable:
		 * an exec cannot make the agent fetch anything. */
		if (!rec || strcmp(json_string_value(json_array_get(rec, 0)), eq + 1))
			return sp_error(err, SP_ERR_DENIED,
					"env %s: a sealed value the container was not created with (execs get the container's unsealed secrets only)",
					name);
		json_array_set(env, i, json_array_get(rec, 1));
		*changed = true;
	}
	return 0;
}
