/* SPDX-License-Identifier: Apache-2.0 */
/* The policy gate: every request is decided before it has any effect.
 * Before SetPolicy only Health.Check, GetGuestDetails and SetPolicy pass.
 * SetPolicy is accepted once, before any container, and only if the
 * policy's SHA-256 equals HOST_DATA in a fresh report of the TEE itself:
 * the host chose HOST_DATA at launch, and the report proves to a relying
 * party which policy this guest enforces. */
#include <string.h>
#include <sys/random.h>

#include "agent_internal.h"
#include "sealpod/codec.h"
#include "sealpod/log.h"
#include "sealpod/tee.h"
#ifdef SP_AGENT_HAVE_POLICY
#include "sealpod/policy.h"
#endif

/* ATTESTATION_REPORT offsets (AMD SEV-SNP ABI, table "ATTESTATION_REPORT
 * Structure"). */
#define SNP_REPORT_DATA_OFF 0x50
#define SNP_HOST_DATA_OFF 0xC0
#define SNP_HOST_DATA_LEN 32
_Static_assert(SNP_HOST_DATA_OFF + SNP_HOST_DATA_LEN <= SP_SNP_REPORT_LEN,
	       "HOST_DATA inside the report");
_Static_assert(SNP_REPORT_DATA_OFF + 64 <= SNP_HOST_DATA_OFF,
	       "REPORT_DATA before HOST_DATA");

static bool always_allowed(const char *method)
{
	/* No effect and no data beyond versions: the host needs them to
	 * decide what to send. */
	return !strcmp(method, "Check") || !strcmp(method, "GetGuestDetails");
}

bool gate_check(sp_agent *a, const char *method, const ProtobufCMessage *msg,
		reply *r, void **change)
{
	*change = NULL;
	if (!a->policy_set &&
	    !(always_allowed(method) || !strcmp(method, "SetPolicy"))) {
		reply_err(r, SP_RPC_PERMISSION_DENIED,
			  "%s denied: no policy is in force yet; the host must call SetPolicy first (until then only Health.Check, GetGuestDetails and SetPolicy are allowed)",
			  method);
		return false;
	}
	if (!strcmp(method, "Check"))
		return true;
#ifdef SP_AGENT_HAVE_POLICY
	/* The evaluator decides too, before SetPolicy as well (it keeps
	 * count of SetPolicy in its state). */
	if (!a->policy_state)
		a->policy_state = sp_policy_state_new();
	sp_policy_decision d = {0};
	sp_policy_change *ch = NULL;
	int rc = sp_policy_decide(a->policy, a->policy_state, method, msg, &d, &ch);
	if (rc < 0) {
		sp_policy_decision_clear(&d);
		reply_err(r, SP_RPC_PERMISSION_DENIED,
			  "%s denied: the policy evaluator failed (%d)", method, rc);
		return false;
	}
	if (!d.allow) {
		reply_err(r, SP_RPC_PERMISSION_DENIED, "%s",
			  d.message ? d.message : "denied by policy");
		sp_policy_decision_clear(&d);
		return false;
	}
	sp_policy_decision_clear(&d);
	*change = ch;
	return true;
#else
	(void)msg;
	if (!a->policy_set)
		return true;
	reply_err(r, SP_RPC_PERMISSION_DENIED,
		  "%s denied: this agent was built without the policy evaluator",
		  method);
	return false;
#endif
}

int gate_commit(sp_agent *a, void **change)
{
#ifdef SP_AGENT_HAVE_POLICY
	sp_policy_change *ch = *change;
	*change = NULL;
	if (!ch)
		return 0;
	if (!a->policy_state)
		a->policy_state = sp_policy_state_new();
	int rc = sp_policy_state_commit(a->policy_state, ch);
	if (rc < 0)
		sp_log_warn("policy state: a change could not be recorded (%d)", rc);
	return rc;
#else
	(void)a;
	*change = NULL;
	return 0;
#endif
}

void gate_drop(void **change)
{
#ifdef SP_AGENT_HAVE_POLICY
	sp_policy_change_free(*change);
#endif
	*change = NULL;
}

void gate_forget(sp_agent *a, const char *container_id)
{
#ifdef SP_AGENT_HAVE_POLICY
	if (a->policy_state)
		sp_policy_state_forget(a->policy_state, container_id);
#else
	(void)a;
	(void)container_id;
#endif
}

void gate_forget_exec(sp_agent *a, const char *container_id, const char *exec_id)
{
#ifdef SP_AGENT_HAVE_POLICY
	if (a->policy_state)
		sp_policy_state_forget_exec(a->policy_state, container_id, exec_id);
#else
	(void)a;
	(void)container_id;
	(void)exec_id;
#endif
}

/* Runs with the lock held; drops it around the TEE call, with
 * set_policy_busy keeping a second SetPolicy out meanwhile. */
int gate_set_policy(sp_agent *a, const char *policy, size_t len, void **change,
		    reply *r)
{
	if (len == 0)
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "SetPolicy: the policy is empty");
	if (!a->have_tee)
		return reply_err(r, SP_RPC_FAILED_PRECONDITION,
				 "SetPolicy: this guest has no TEE to prove the policy with (started with --tee none); a policy cannot be accepted");
	uint8_t hash[SP_SHA256_LEN];
	sp_sha256(hash, policy, len);
	uint8_t nonce[64];
	if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
		return reply_err(r, SP_RPC_INTERNAL,
				 "SetPolicy: no randomness for the report nonce");

	a->set_policy_busy = true;
	pthread_mutex_unlock(&a->lock);
	_cleanup_free_ uint8_t *rep = NULL, *certs = NULL;
	size_t rep_len = 0, certs_len = 0;
	_cleanup_err_ sp_err *e = NULL;
	int rc = agent_tee_report(a, nonce, &rep, &rep_len, &certs, &certs_len, &e);
	pthread_mutex_lock(&a->lock);
	a->set_policy_busy = false;
	if (rc < 0)
		return reply_sp_err(r, e, "SetPolicy: get a report from the TEE");
	if (rep_len != SP_SNP_REPORT_LEN)
		return reply_err(r, SP_RPC_INTERNAL,
				 "SetPolicy: the TEE returned a report of %zu bytes, not %d",
				 rep_len, SP_SNP_REPORT_LEN);
	/* A report over another nonce would be a replay from the channel. */
	if (!sp_memeq_ct(rep + SNP_REPORT_DATA_OFF, nonce, sizeof(nonce)))
		return reply_err(r, SP_RPC_INTERNAL,
				 "SetPolicy: the TEE's report does not carry the nonce asked for; refusing it");
	if (!sp_memeq_ct(rep + SNP_HOST_DATA_OFF, hash, SNP_HOST_DATA_LEN)) {
		char want[65], got[65];
		sp_hex_encode(want, hash, 32);
		sp_hex_encode(got, rep + SNP_HOST_DATA_OFF, 32);
		sp_log_warn("SetPolicy refused: policy sha256 %s, HOST_DATA %s", want, got);
		return reply_err(r, SP_RPC_PERMISSION_DENIED,
				 "SetPolicy denied: SHA-256 of the policy is %s but HOST_DATA in this guest's TEE report is %s; launch the UVM with host-data set to the policy's SHA-256",
				 want, got);
	}
#ifdef SP_AGENT_HAVE_POLICY
	sp_policy *p = NULL;
	if (sp_policy_load(&p, policy, len, &e) < 0)
		return reply_sp_err(r, e, "SetPolicy: the policy");
	const char *kbs_ca = NULL, *kbs_url = sp_policy_kbs_url(p, &kbs_ca);
	if (kbs_url && attest_set_kbs(a, kbs_url, kbs_ca, &e) < 0) {
		sp_policy_free(p);
		return reply_sp_err(r, e, "SetPolicy: policy.kbs");
	}
	if (!a->policy_state)
		a->policy_state = sp_policy_state_new();
	a->policy = p;
#endif
	gate_commit(a, change);
	memcpy(a->policy_hash, hash, sizeof(hash));
	a->policy_set = true;
	char hex[65];
	sp_hex_encode(hex, hash, 32);
	sp_log_info("policy %s in force", hex);
	return reply_empty(r);
}

void gate_free(sp_agent *a)
{
#ifdef SP_AGENT_HAVE_POLICY
	sp_policy_free(a->policy);
	sp_policy_state_free(a->policy_state);
#endif
	a->policy = a->policy_state = NULL;
	attest_kbs_free(a);
}
