/* SPDX-License-Identifier: Apache-2.0 */
/* The KBS client: RCAR (auth, attest) and a resource fetch, decrypting the
 * JWE with an ephemeral key bound into REPORT_DATA. Guest-safe: OpenSSL,
 * jansson and the small HTTP client only. */
#include <string.h>

#include <openssl/crypto.h>

#include "kbs-internal.h"
#include "sealpod/codec.h"
#include "sealpod/json.h"
#include "sealpod/snp.h"

void sp_kbs_client_opts_init(sp_kbs_client_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->version = 1;
}

static const char *cert_kind_name(int kind)
{
	switch (kind) {
	case SP_SNP_CERT_VCEK: return "VCEK";
	case SP_SNP_CERT_VLEK: return "VLEK";
	case SP_SNP_CERT_ASK: return "ASK";
	case SP_SNP_CERT_ARK: return "ARK";
	default: return "OTHER";
	}
}

int sp_kbs_evidence_json(const uint8_t *rep, size_t rl, const uint8_t *certs, size_t cl,
			 json_t **evidence, sp_err **err)
{
	*evidence = NULL;
	_cleanup_free_ char *r64 = sp_base64_encode(rep, rl, SP_B64_STD);
	json_t *chain = json_null();
	if (certs && cl) {
		sp_snp_cert_entry ents[8];
		size_t n = 0;
		if (sp_snp_cert_table_parse(ents, SP_ARRAY_LEN(ents), &n, certs, cl, err) < 0) {
			json_decref(chain);
			return sp_error_wrap(err, "the TEE's certificate table");
		}
		json_decref(chain);
		chain = json_array();
		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *d = sp_base64_encode(ents[i].der, ents[i].len, SP_B64_STD);
			json_array_append_new(chain, json_pack("{s:s,s:s}", "cert_type",
							       cert_kind_name(ents[i].kind), "data", d));
		}
	}
	*evidence = json_pack("{s:s,s:o}", "attestation_report", r64, "cert_chain", chain);
	if (!*evidence)
		sp_oom();
	return 0;
}

int sp_kbs_tee_evidence(void *ctx, const uint8_t report_data[SP_TEE_REPORT_DATA_LEN],
			json_t **evidence, sp_err **err)
{
	sp_tee *tee = ctx;
	_cleanup_free_ uint8_t *rep = NULL, *certs = NULL;
	size_t rl = 0, cl = 0;
	int r = sp_tee_get_report(tee, report_data, &rep, &rl, &certs, &cl, err);
	if (r < 0)
		return r;
	return sp_kbs_evidence_json(rep, rl, certs, cl, evidence, err);
}

/* Turns a non-2xx answer into an error carrying the broker's detail. */
static int broker_error(const struct kbs_http_resp *resp, const char *step, sp_err **err)
{
	const char *detail = NULL, *type = NULL;
	_cleanup_json_ json_t *j = NULL;
	if (resp->body_len &&
	    sp_json_parse(&j, resp->body, resp->body_len, "error", NULL) == 0 && json_is_object(j)) {
		detail = json_string_value(json_object_get(j, "detail"));
		type = json_string_value(json_object_get(j, "type"));
	}
	const char *t = type && strrchr(type, '/') ? strrchr(type, '/') + 1 : (type ?: "?");
	int code = resp->status == 403 ? SP_ERR_DENIED
		 : resp->status == 401 ? SP_ERR_APPRAISAL
		 : resp->status == 404 ? SP_ERR_NOT_FOUND
				       : SP_ERR_PROTOCOL;
	return sp_error(err, code, "KBS %s: HTTP %d %.64s: %.400s", step, resp->status, t,
			detail ? detail : "(no detail)");
}

void sp_kbs_attestation_clear(sp_kbs_attestation *a)
{
	free(a->token);
	free(a->session);
	if (a->key)
		sp_kbs_key_free(a->key);
	memset(a, 0, sizeof(*a));
}

/* exp - iat of a JWT, read without checking its signature (the caller
 * only uses it to know when to ask again); 0 if either is missing. */
static long token_lifetime(const char *token)
{
	const char *d1 = strchr(token, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	_cleanup_free_ uint8_t *cb = NULL;
	size_t cl = 0;
	_cleanup_json_ json_t *c = NULL;
	if (!d2 || sp_base64_decode(&cb, &cl, d1 + 1, (size_t)(d2 - d1 - 1), SP_B64_URL, NULL) < 0 ||
	    sp_json_parse(&c, cb, cl, "token claims", NULL) < 0)
		return 0;
	json_t *exp = json_object_get(c, "exp"), *iat = json_object_get(c, "iat");
	if (!json_is_integer(exp) || !json_is_integer(iat) ||
	    json_integer_value(exp) <= json_integer_value(iat))
		return 0;
	json_int_t l = json_integer_value(exp) - json_integer_value(iat);
	return l > 86400 * 365 ? 86400 * 365 : (long)l;
}

int sp_kbs_client_attest(sp_kbs_attestation *out, const char *url, const char *tee,
			 sp_kbs_evidence_fn fn, void *ctx, const sp_kbs_client_opts *opts,
			 sp_err **err)
{
	sp_kbs_client_opts dflt;
	if (!opts) {
		sp_kbs_client_opts_init(&dflt);
		opts = &dflt;
	}
	memset(out, 0, sizeof(*out));
	struct kbs_url u;
	int r;
	if ((r = kbs_url_parse(&u, url, err)) < 0)
		return r;
	struct kbs_http_resp resp = {0};
	_cleanup_free_ char *session = NULL, *cookie = NULL;
	_cleanup_kbs_key_ sp_kbs_key *key = NULL;
	_cleanup_json_ json_t *jwk = NULL, *ch = NULL, *evidence = NULL, *ans = NULL;
	_cleanup_json_ json_t *auth = NULL, *att = NULL;
	_cleanup_free_ char *body = NULL;
	const char *nonce = NULL, *token = NULL;
	uint8_t rd[SP_TEE_REPORT_DATA_LEN];
	const char *hdrs[] = {NULL, NULL};

	/* 1. auth */
	auth = json_pack(
		"{s:s,s:s,s:{s:[s]}}", "version",
		opts->version_override ? opts->version_override : SP_KBS_PROTOCOL_VERSION, "tee",
		tee, "extra-params", "supported-hash-algorithms", "sha384");
	body = sp_json_dump_canonical(auth);
	if ((r = kbs_http_request(&u, "POST", "/kbs/v0/auth", NULL, body, strlen(body),
				  opts->ca_file, opts->timeout_s, &resp, err)) < 0)
		goto out;
	if (resp.status != 200) {
		r = broker_error(&resp, "auth", err);
		goto out;
	}
	if (!resp.session) {
		r = sp_error(err, SP_ERR_PROTOCOL, "KBS auth: no %s cookie in the answer",
			     SP_KBS_COOKIE);
		goto out;
	}
	if ((r = sp_json_parse(&ch, resp.body, resp.body_len, "KBS challenge", err)) < 0 ||
	    (r = sp_json_get_string(ch, "nonce", true, &nonce, "KBS challenge", err)) < 0)
		goto out;
	session = sp_steal_ptr(&resp.session);
	cookie = sp_xasprintf("Cookie: %s=%s", SP_KBS_COOKIE, session);
	kbs_http_resp_clear(&resp);
	if (opts->nonce_override)
		nonce = opts->nonce_override;

	/* 2. attest: an ephemeral key, bound with the nonce in REPORT_DATA. */
	if ((r = sp_kbs_key_generate_ec(&key, err)) < 0)
		goto out;
	jwk = sp_kbs_key_public_jwk(key);
	if ((r = sp_kbs_report_data(rd, nonce, jwk, err)) < 0)
		goto out;
	if ((r = fn(ctx, rd, &evidence, err)) < 0) {
		sp_error_wrap(err, "evidence for the KBS");
		goto out;
	}
	if (opts->sev_evidence && (r = sp_kbs_evidence_to_sev(evidence, err)) < 0)
		goto out;
	att = json_pack(
		"{s:{s:s,s:O},s:{s:O}}", "runtime-data", "nonce", nonce, "tee-pubkey", jwk,
		"tee-evidence", "primary_evidence", evidence);
	if (!att)
		sp_oom();
	free(body);
	body = sp_json_dump_canonical(att);
	hdrs[0] = cookie;
	if ((r = kbs_http_request(&u, "POST", "/kbs/v0/attest", hdrs, body, strlen(body),
				  opts->ca_file, opts->timeout_s, &resp, err)) < 0)
		goto out;
	if (resp.status != 200) {
		r = broker_error(&resp, "attest", err);
		goto out;
	}
	if ((r = sp_json_parse(&ans, resp.body, resp.body_len, "KBS attest answer", err)) < 0 ||
	    (r = sp_json_get_string(ans, "token", true, &token, "KBS attest answer", err)) < 0)
		goto out;
	if (!*token || strlen(token) > 64 * 1024 || strcspn(token, "\r\n ") != strlen(token)) {
		r = sp_error(err, SP_ERR_PROTOCOL, "KBS attest answer: the token is not a JWT");
		goto out;
	}
	out->token = sp_xstrdup(token);
	out->lifetime = token_lifetime(token);
	out->session = sp_steal_ptr(&session);
	out->key = sp_steal_ptr(&key);
	r = 0;
out:
	kbs_http_resp_clear(&resp);
	kbs_url_clear(&u);
	return r;
}

/* GET repo/type/tag with the given credential header; decrypts the JWE. */
static int fetch(uint8_t **out, size_t *len, const char *url, const char *cred,
		 const sp_kbs_key *key, const char *repo, const char *type, const char *tag,
		 const sp_kbs_client_opts *opts, sp_err **err)
{
	sp_kbs_client_opts dflt;
	if (!opts) {
		sp_kbs_client_opts_init(&dflt);
		opts = &dflt;
	}
	_cleanup_free_ char *rpath = sp_xasprintf("%s/%s/%s", repo, type, tag);
	int r;
	if ((r = sp_kbs_resource_path_check(rpath, err)) < 0)
		return r;
	struct kbs_url u;
	if ((r = kbs_url_parse(&u, url, err)) < 0)
		return r;
	struct kbs_http_resp resp = {0};
	_cleanup_json_ json_t *jwe = NULL;
	_cleanup_free_ char *path = sp_xasprintf("/kbs/v0/resource/%s", rpath);
	const char *hdrs[] = {cred, NULL};
	if ((r = kbs_http_request(&u, "GET", path, hdrs, NULL, 0, opts->ca_file, opts->timeout_s,
				  &resp, err)) < 0)
		goto out;
	if (resp.status != 200) {
		r = broker_error(&resp, "resource", err);
		goto out;
	}
	if ((r = sp_json_parse(&jwe, resp.body, resp.body_len, "KBS resource", err)) < 0)
		goto out;
	r = sp_kbs_jwe_decrypt(out, len, key, jwe, err);
	if (r < 0)
		sp_error_wrap(err, "KBS resource %s", rpath);
out:
	kbs_http_resp_clear(&resp);
	kbs_url_clear(&u);
	return r;
}

int sp_kbs_client_fetch(uint8_t **out, size_t *len, const char *url, const char *token,
			const sp_kbs_key *key, const char *repo, const char *type,
			const char *tag, const sp_kbs_client_opts *opts, sp_err **err)
{
	if (!token || !*token || strcspn(token, "\r\n") != strlen(token))
		return sp_error(err, SP_ERR_INVALID, "KBS resource: no usable token");
	_cleanup_free_ char *cred = sp_xasprintf("Authorization: Bearer %s", token);
	return fetch(out, len, url, cred, key, repo, type, tag, opts, err);
}

int sp_kbs_client_get_resource(uint8_t **out, size_t *len, const char *url, const char *tee,
			       sp_kbs_evidence_fn fn, void *ctx, const char *repo,
			       const char *type, const char *tag, const sp_kbs_client_opts *opts,
			       sp_err **err)
{
	_cleanup_free_ char *rpath = sp_xasprintf("%s/%s/%s", repo, type, tag);
	int r;
	if ((r = sp_kbs_resource_path_check(rpath, err)) < 0)
		return r;
	sp_kbs_attestation a;
	if ((r = sp_kbs_client_attest(&a, url, tee, fn, ctx, opts, err)) < 0)
		return r;
	/* The session cookie, as Trustee's own client does. */
	_cleanup_free_ char *cred = sp_xasprintf("Cookie: %s=%s", SP_KBS_COOKIE, a.session);
	r = fetch(out, len, url, cred, a.key, repo, type, tag, opts, err);
	sp_kbs_attestation_clear(&a);
	return r;
}

int sp_kbs_admin_request(int *status, uint8_t **body_out, size_t *body_len, const char *url,
			 const char *method, const char *path, const char *admin_token,
			 const void *body, size_t len, const sp_kbs_client_opts *opts, sp_err **err)
{
	sp_kbs_client_opts dflt;
	if (!opts) {
		sp_kbs_client_opts_init(&dflt);
		opts = &dflt;
	}
	*status = 0;
	*body_out = NULL;
	*body_len = 0;
	if (strncmp(path, "/kbs/v0/", 8) || strcspn(path, " \r\n") != strlen(path))
		return sp_error(err, SP_ERR_INVALID, "admin path `%.100s`: want /kbs/v0/...", path);
	if (!admin_token || strcspn(admin_token, "\r\n") != strlen(admin_token))
		return sp_error(err, SP_ERR_INVALID, "admin token: one line");
	struct kbs_url u;
	int r;
	if ((r = kbs_url_parse(&u, url, err)) < 0)
		return r;
	_cleanup_free_ char *auth = sp_xasprintf("Authorization: Bearer %s", admin_token);
	const char *hdrs[] = {auth, body ? "Content-Type: application/octet-stream" : NULL, NULL};
	struct kbs_http_resp resp = {0};
	r = kbs_http_request(&u, method, path, hdrs, body, len, opts->ca_file, opts->timeout_s,
			     &resp, err);
	kbs_url_clear(&u);
	if (r < 0)
		return r;
	*status = resp.status;
	*body_out = sp_steal_ptr(&resp.body);
	*body_len = resp.body_len;
	kbs_http_resp_clear(&resp);
	return 0;
}
