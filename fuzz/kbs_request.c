/* SPDX-License-Identifier: Apache-2.0 */
/* The key broker's parsers of outside bytes. The first byte picks one:
 * 0 auth body, 1 attest body (and its JWK and REPORT_DATA), 2 resource
 * policy rule, 3 resource path, 4 a JWE for the client's key, 5 an HTTP
 * response head (the client), 6 a bearer token, 7 the sev crate's report
 * object (guest-components' evidence form), which must survive a round trip
 * through the report bytes unchanged, 8 a sealed secret (parsed, then
 * unsealed against a stand-in broker, with and without a required
 * signature). */
#include <string.h>

#include "kbs/kbs-internal.h"
#include "sealpod/json.h"
#include "sealpod/sealed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The stand-in broker: every resource is the same EC P-256 JWK, which is
 * both a "secret" and a usable verification key. */
static int fake_fetch(void *ctx, const sp_sealed_uri *u, uint8_t **out, size_t *len,
		      sp_err **err)
{
	const char *jwk = ctx;
	*out = (uint8_t *)sp_xstrdup(jwk);
	*len = strlen(jwk);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static sp_kbs_key *key;
	if (!key && sp_kbs_key_generate_ec(&key, NULL) < 0)
		abort();
	if (size < 1)
		return 0;
	uint8_t sel = data[0] % 9;
	data++;
	size--;
	sp_err *err = NULL;
	switch (sel) {
	case 0: {
		sp_kbs_auth_req a;
		sp_kbs_auth_req_parse(&a, data, size, &err);
		break;
	}
	case 1: {
		sp_kbs_attest_req a;
		if (sp_kbs_attest_req_parse(&a, data, size, &err) == 0) {
			sp_kbs_key *k = NULL;
			uint8_t rd[64];
			if (sp_kbs_jwk_parse(&k, a.tee_pubkey, &err) == 0)
				sp_kbs_key_free(k);
			sp_err_clear(&err);
			sp_kbs_report_data(rd, a.nonce, a.tee_pubkey, &err);
			sp_kbs_attest_req_clear(&a);
		}
		break;
	}
	case 2: {
		json_t *j = NULL;
		if (sp_json_parse(&j, data, size, "policy", &err) == 0) {
			json_t *claims = json_pack("{s:s,s:s}", "host_data", "00", "measurement", "11");
			sp_kbs_policy_validate(j, NULL);
			json_t *mm = json_pack("[s]", "11");
			sp_kbs_policy_check(j, "r/t/g", claims, mm, NULL);
			json_decref(mm);
			json_decref(claims);
			json_decref(j);
		}
		break;
	}
	case 3: {
		char *s = sp_xstrndup((const char *)data, size);
		sp_kbs_resource_path_check(s, &err);
		free(s);
		break;
	}
	case 4: {
		json_t *j = NULL;
		if (sp_json_parse(&j, data, size, "jwe", &err) == 0) {
			uint8_t *pt = NULL;
			size_t len = 0;
			if (sp_kbs_jwe_decrypt(&pt, &len, key, j, &err) == 0)
				free(pt);
			json_decref(j);
		}
		break;
	}
	case 5: {
		struct kbs_http_resp r = {0};
		int64_t cl;
		bool chunked;
		kbs_http_parse_head(&r, (const char *)data, size, &cl, &chunked, &err);
		kbs_http_resp_clear(&r);
		break;
	}
	case 6: {
		char *s = sp_xstrndup((const char *)data, size);
		json_t *c = NULL;
		if (sp_kbs_token_verify(&c, key, s, 0, &err) == 0)
			json_decref(c);
		free(s);
		break;
	}
	case 7: {
		json_t *j = NULL;
		if (sp_json_parse(&j, data, size, "report", &err) == 0) {
			uint8_t rep[SP_SNP_REPORT_LEN], back[SP_SNP_REPORT_LEN];
			if (sp_kbs_sev_report_from_json(rep, j, &err) == 0) {
				json_t *o = NULL;
				/* Bytes built from an object re-encode to the same bytes. */
				if (sp_kbs_sev_report_to_json(&o, rep, sizeof(rep), &err) < 0 ||
				    sp_kbs_sev_report_from_json(back, o, &err) < 0 ||
				    memcmp(rep, back, sizeof(rep)))
					abort();
				json_decref(o);
			}
			json_decref(j);
		}
		break;
	}
	case 8: {
		static char *jwk;
		if (!jwk) {
			json_t *j = sp_kbs_key_public_jwk(key);
			jwk = sp_json_dump_canonical(j);
			json_decref(j);
		}
		sp_sealed_secret s;
		if (sp_sealed_parse(&s, (const char *)data, size, &err) == 0) {
			sp_sealed_opts o;
			sp_sealed_opts_init(&o);
			for (int sig = 0; sig < 2; sig++) {
				uint8_t *out = NULL;
				size_t len = 0;
				o.require_signature = sig;
				sp_err_clear(&err);
				if (sp_sealed_unseal(&out, &len, &s, fake_fetch, jwk, &o, &err) == 0)
					free(out);
			}
			sp_sealed_clear(&s);
		}
		break;
	}
	}
	sp_err_free(err);
	return 0;
}
