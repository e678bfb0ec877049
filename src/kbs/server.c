/* SPDX-License-Identifier: Apache-2.0 */
/* The broker's HTTP API: RCAR (auth, attest), resources as JWE, and the
 * admin API. Errors go out as RFC 7807-like bodies whose detail is written
 * here for the client; internal messages are only logged. */
#include <string.h>
#include <time.h>

#include "server.h"
#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"
#include "sealpod/log.h"
#include "sealpod/release.h"

#define PREFIX "/kbs/v0/"

struct req {
	sp_buf body;
	bool too_large;
	size_t max;
};

void kbs_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		   enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;
	if (!r)
		return;
	sp_buf_free(&r->body);
	free(r);
	*con_cls = NULL;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, int status, const json_t *j,
				 const char *cookie)
{
	_cleanup_free_ char *s = sp_json_dump_canonical(j);
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	if (cookie)
		MHD_add_response_header(resp, "Set-Cookie", cookie);
	enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return r;
}

/* Sends an error of category code with a detail meant for the client. */
static enum MHD_Result send_error(struct MHD_Connection *conn, int code, const char *detail)
{
	_cleanup_free_ char *type = sp_xasprintf(SP_KBS_ERROR_TYPE_PREFIX "%s",
						 sp_kbs_error_type(code));
	_cleanup_json_ json_t *j = json_pack("{s:s,s:s}", "type", type, "detail", detail);
	return send_json(conn, sp_kbs_http_status(code), j, NULL);
}

/* The client-facing detail for an error: messages about the client's own
 * request pass; verification failures get a fixed text per category;
 * anything else is "internal error". The whole message is logged. */
static enum MHD_Result fail(struct MHD_Connection *conn, const char *what, sp_err *e)
{
	int code = e ? e->code : SP_ERR_SYSTEM;
	const char *detail;
	switch (code) {
	case SP_ERR_PARSE:
	case SP_ERR_INVALID:
	case SP_ERR_UNSUPPORTED:
	case SP_ERR_LIMIT:
	case SP_ERR_PROTOCOL:
	case SP_ERR_DENIED:
	case SP_ERR_STATE:
	case SP_ERR_NOT_FOUND:
		detail = sp_err_msg(e);
		break;
	case SP_ERR_SIGNATURE:
		detail = "the evidence's signature does not verify";
		break;
	case SP_ERR_CERTIFICATE:
		detail = "the evidence's certificate chain does not lead to a root this broker "
			 "trusts";
		break;
	case SP_ERR_APPRAISAL:
		detail = "the evidence does not satisfy this broker's appraisal (measurement, "
			 "HOST_DATA, TCB, debug policy or the REPORT_DATA binding)";
		break;
	default:
		detail = "internal error; the broker's log has the cause";
		code = SP_ERR_SYSTEM;
	}
	sp_log_warn("%s: %s: %s", what, sp_err_code_name(e ? e->code : SP_ERR_SYSTEM),
		    sp_err_msg(e));
	return send_error(conn, code, detail);
}

static bool admin_ok(const struct kbs_config *cfg, struct MHD_Connection *conn, sp_err **err)
{
	if (!cfg->admin_token) {
		sp_error(err, SP_ERR_STATE,
			 "the admin API is disabled: start sealpod-kbs with --admin-token-file");
		return false;
	}
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	size_t tl = strlen(cfg->admin_token);
	if (!h || strncmp(h, "Bearer ", 7) || strlen(h + 7) != tl ||
	    !sp_memeq_ct(h + 7, cfg->admin_token, tl)) {
		sp_error(err, SP_ERR_STATE,
			 "admin request without the admin bearer token (Authorization: Bearer ...)");
		return false;
	}
	return true;
}

/* ---- RCAR ----------------------------------------------------------------- */

static enum MHD_Result do_auth(struct kbs_config *cfg, struct MHD_Connection *conn,
			       struct req *rq)
{
	_cleanup_err_ sp_err *err = NULL;
	sp_kbs_auth_req a;
	if (sp_kbs_auth_req_parse(&a, rq->body.data, rq->body.len, &err) < 0)
		return fail(conn, "auth", err);
	if (strcmp(a.tee, "snp") && !(cfg->allow_sim && !strcmp(a.tee, "sim"))) {
		sp_error(&err, SP_ERR_UNSUPPORTED,
			 "tee `%s` is not accepted by this broker (it takes \"snp\"%s)", a.tee,
			 cfg->allow_sim ? " and \"sim\"" : "; \"sim\" only when started with --allow-sim");
		return fail(conn, "auth", err);
	}
	time_t now = time(NULL);
	sp_kbs_session_expire(cfg->store, now, NULL);
	sp_kbs_session s;
	if (sp_kbs_session_new(cfg->store, a.tee, now, cfg->session_ttl, &s, &err) < 0)
		return fail(conn, "auth", err);
	_cleanup_free_ char *cookie = sp_xasprintf(SP_KBS_COOKIE "=%s; Max-Age=%d; Path=/kbs/v0; "
						   "HttpOnly", s.id, cfg->session_ttl);
	_cleanup_json_ json_t *ch = json_pack("{s:s,s:{}}", "nonce", s.nonce, "extra-params");
	sp_log_info("auth: new %s session %.8s...", s.tee, s.id);
	sp_kbs_session_clear(&s);
	return send_json(conn, 200, ch, cookie);
}

static int load_session(struct kbs_config *cfg, struct MHD_Connection *conn,
			sp_kbs_session *s, sp_err **err)
{
	const char *id = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, SP_KBS_COOKIE);
	if (!id)
		return sp_error(err, SP_ERR_STATE,
				"no " SP_KBS_COOKIE " cookie: start with POST /kbs/v0/auth");
	if (sp_kbs_session_get(cfg->store, id, time(NULL), s, err) < 0) {
		if ((*err)->code == SP_ERR_NOT_FOUND) {
			sp_err_clear(err);
			return sp_error(err, SP_ERR_STATE,
					"unknown or expired session: start again with POST "
					"/kbs/v0/auth");
		}
		return (*err)->code;
	}
	return 0;
}

static bool in_set(const uint8_t *v, const void *set, size_t n, size_t len)
{
	bool found = false;
	for (size_t i = 0; i < n; i++)
		found |= sp_memeq_ct(v, (const uint8_t *)set + i * len, len);
	return found;
}

static enum MHD_Result do_attest(struct kbs_config *cfg, struct MHD_Connection *conn,
				 struct req *rq)
{
	_cleanup_err_ sp_err *err = NULL;
	sp_kbs_session s = {0};
	sp_kbs_attest_req a = {0};
	sp_snp_verifier *v = NULL;
	_cleanup_kbs_key_ sp_kbs_key *pk = NULL;
	_cleanup_json_ json_t *claims = NULL, *tok = NULL, *reply = NULL;
	_cleanup_free_ char *token = NULL;
	enum MHD_Result res;
	if (load_session(cfg, conn, &s, &err) < 0 ||
	    sp_kbs_attest_req_parse(&a, rq->body.data, rq->body.len, &err) < 0 ||
	    sp_kbs_jwk_parse(&pk, a.tee_pubkey, &err) < 0)
		goto fail;
	if (strlen(a.nonce) != strlen(s.nonce) ||
	    !sp_memeq_ct(a.nonce, s.nonce, strlen(s.nonce))) {
		sp_error(&err, SP_ERR_STATE,
			 "runtime-data.nonce is not this session's challenge: use the nonce "
			 "from POST /kbs/v0/auth");
		goto fail;
	}
	uint8_t rd[SP_TEE_REPORT_DATA_LEN];
	if (sp_kbs_report_data(rd, a.nonce, a.tee_pubkey, &err) < 0)
		goto fail;
	v = sp_snp_verifier_new();
	bool sim = !strcmp(s.tee, "sim");
	if (sim && cfg->sim_root &&
	    sp_snp_verifier_trust_sim_root(v, cfg->sim_root, cfg->sim_root_len, &err) < 0)
		goto fail;
	if (cfg->kds_cache)
		sp_snp_verifier_set_kds(v, cfg->kds_cache, cfg->kds_offline);
	for (size_t i = 0; i < a.n_certs; i++) {
		if (sp_snp_verifier_add_certs(v, a.certs[i], a.cert_lens[i], &err) < 0) {
			sp_error_wrap(&err, "cert_chain[%zu]", i);
			goto fail;
		}
	}
	sp_snp_appraisal ap;
	sp_snp_appraisal_init(&ap);
	ap.allow_sim = sim;
	ap.measurements = (const uint8_t(*)[SP_SNP_MEASUREMENT_LEN])cfg->measurements;
	ap.n_measurements = cfg->n_measurements;
	ap.check_min_tcb = cfg->check_min_tcb;
	ap.min_tcb = cfg->min_tcb;
	ap.check_report_data = true;
	memcpy(ap.report_data, rd, sizeof(rd));
	if (sp_snp_verify(v, a.report, a.report_len, &ap, &claims, &err) < 0)
		goto fail;
	if (cfg->n_host_data && !in_set(a.report + 0xC0, cfg->host_data, cfg->n_host_data,
					 SP_SNP_HOST_DATA_LEN)) {
		sp_error(&err, SP_ERR_APPRAISAL, "HOST_DATA is not among --allow-host-data");
		goto fail;
	}
	time_t now = time(NULL);
	tok = json_pack("{s:s,s:I,s:I,s:s,s:O,s:O,s:O,s:O,s:O}", "iss", "sealpod-kbs", "iat",
			(json_int_t)now, "exp", (json_int_t)(now + cfg->session_ttl), "tee", s.tee,
			"tee-pubkey", a.tee_pubkey, "measurement",
			json_object_get(claims, "measurement"), "host_data",
			json_object_get(claims, "host_data"), "report_data",
			json_object_get(claims, "report_data"), "snp", claims);
	if (!tok) {
		sp_error(&err, SP_ERR_SYSTEM, "claims lack measurement/host_data");
		goto fail;
	}
	if (sp_kbs_token_sign(&token, cfg->token_key, tok, &err) < 0 ||
	    sp_kbs_session_set_attested(cfg->store, s.id, tok, &err) < 0)
		goto fail;
	reply = json_pack("{s:s}", "token", token);
	sp_log_info("attest: %s session %.8s... attested (host_data %s)", s.tee, s.id,
		    json_string_value(json_object_get(claims, "host_data")));
	res = send_json(conn, 200, reply, NULL);
	goto out;
fail:
	res = fail(conn, "attest", err);
out:
	if (v)
		sp_snp_verifier_free(v);
	sp_kbs_attest_req_clear(&a);
	sp_kbs_session_clear(&s);
	return res;
}

struct manifest_walk {
	const sp_release_key *key;
	bool sim;
	json_t *measurements; /* hex strings */
};

static int collect_manifest(void *ctx, const uint8_t *m, size_t ml, const uint8_t *sig,
			    size_t sl)
{
	struct manifest_walk *w = ctx;
	_cleanup_json_ json_t *man = NULL;
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_free_ uint8_t(*meas)[48] = NULL;
	size_t n = 0;
	/* A manifest that does not verify under the rule's key lists nothing. */
	if (sp_release_verify(&man, w->key, m, ml, sig, sl, &err) < 0 ||
	    sp_release_measurements(&meas, &n, man, w->sim, &err) < 0) {
		sp_log_warn("release manifest skipped: %s", sp_err_msg(err));
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		char hex[97];
		sp_hex_encode(hex, meas[i], 48);
		json_array_append_new(w->measurements, json_string(hex));
	}
	return 0;
}

/* The measurements the stored release manifests signed by the rule's
 * manifest_key list, for the report kind of the claims (sim or hardware). */
static int manifest_measurements(struct kbs_config *cfg, const json_t *rule,
				 const json_t *claims, json_t **out, sp_err **err)
{
	*out = NULL;
	json_t *mk = json_object_get(rule, "manifest_key");
	if (!json_is_string(mk))
		return 0;
	_cleanup_release_key_ sp_release_key *key = NULL;
	if (sp_release_key_load(&key, (const uint8_t *)json_string_value(mk),
				json_string_length(mk), err) < 0)
		return sp_error(err, SP_ERR_DENIED, "the resource's manifest_key is not usable");
	const char *tee = json_string_value(json_object_get(claims, "tee"));
	struct manifest_walk w = {.key = key, .sim = tee && !strcmp(tee, "sim"),
				  .measurements = json_array()};
	if (sp_kbs_store_each_manifest(cfg->store, sp_release_key_id(key), collect_manifest, &w,
				       err) < 0) {
		json_decref(w.measurements);
		return (*err)->code;
	}
	*out = w.measurements;
	return 0;
}

static enum MHD_Result get_resource(struct kbs_config *cfg, struct MHD_Connection *conn,
				    const char *path)
{
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_json_ json_t *claims = NULL, *rule = NULL, *jwe = NULL;
	_cleanup_kbs_key_ sp_kbs_key *pk = NULL;
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	if (sp_kbs_resource_path_check(path, &err) < 0)
		return fail(conn, "resource", err);
	if (auth && !strncmp(auth, "Bearer ", 7)) {
		if (sp_kbs_token_verify(&claims, cfg->token_key, auth + 7, time(NULL), &err) < 0) {
			sp_log_warn("resource: bearer token refused: %s", sp_err_msg(err));
			sp_err_clear(&err);
			sp_error(&err, SP_ERR_STATE,
				 "the bearer token is not valid (signature or expiry): attest again");
			return fail(conn, "resource", err);
		}
	} else {
		sp_kbs_session s;
		if (load_session(cfg, conn, &s, &err) < 0)
			return fail(conn, "resource", err);
		if (!s.attested) {
			sp_kbs_session_clear(&s);
			sp_error(&err, SP_ERR_STATE,
				 "the session is not attested: POST /kbs/v0/attest first");
			return fail(conn, "resource", err);
		}
		claims = json_incref(s.claims);
		sp_kbs_session_clear(&s);
	}
	_cleanup_json_ json_t *mm = NULL;
	if (sp_kbs_store_get_policy(cfg->store, path, &rule, &err) < 0 ||
	    manifest_measurements(cfg, rule, claims, &mm, &err) < 0 ||
	    sp_kbs_policy_check(rule, path, claims, mm, &err) < 0 ||
	    sp_kbs_store_get_resource(cfg->store, path, &data, &len, &err) < 0 ||
	    sp_kbs_jwk_parse(&pk, json_object_get(claims, "tee-pubkey"), &err) < 0 ||
	    sp_kbs_jwe_encrypt(&jwe, pk, data, len, &err) < 0)
		return fail(conn, "resource", err);
	sp_log_info("resource: %s released (%zu bytes)", path, len);
	return send_json(conn, 200, jwe, NULL);
}

/* ---- Admin ------------------------------------------------------------------ */

static enum MHD_Result put_resource(struct kbs_config *cfg, struct MHD_Connection *conn,
				    const char *path, struct req *rq)
{
	_cleanup_err_ sp_err *err = NULL;
	if (!admin_ok(cfg, conn, &err) || sp_kbs_resource_path_check(path, &err) < 0 ||
	    sp_kbs_store_put_resource(cfg->store, path, rq->body.data, rq->body.len, &err) < 0)
		return fail(conn, "admin resource", err);
	sp_log_info("admin: resource %s stored (%zu bytes)", path, rq->body.len);
	_cleanup_json_ json_t *ok = json_pack("{s:s}", "stored", path);
	return send_json(conn, 200, ok, NULL);
}

/* Body: {"path":"repo/type/tag","rule":{"host_data":[...],"measurements":[...]}}. */
static enum MHD_Result put_policy(struct kbs_config *cfg, struct MHD_Connection *conn,
				  struct req *rq)
{
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_json_ json_t *j = NULL;
	json_t *rule = NULL;
	const char *path = NULL;
	if (!admin_ok(cfg, conn, &err) ||
	    sp_json_parse(&j, rq->body.data, rq->body.len, "resource-policy", &err) < 0 ||
	    sp_json_get_string(j, "path", true, &path, "resource-policy", &err) < 0 ||
	    sp_json_get_object(j, "rule", true, &rule, "resource-policy", &err) < 0 ||
	    sp_kbs_resource_path_check(path, &err) < 0 || sp_kbs_policy_validate(rule, &err) < 0 ||
	    sp_kbs_store_put_policy(cfg->store, path, rule, &err) < 0)
		return fail(conn, "admin resource-policy", err);
	sp_log_info("admin: policy for %s stored", path);
	_cleanup_json_ json_t *ok = json_pack("{s:s}", "stored", path);
	return send_json(conn, 200, ok, NULL);
}

/* POST /kbs/v0/manifest: {"manifest": "<base64 of manifest.json>",
 * "signature": <the manifest.json.sig object, or its text>}. Stored under
 * the SHA-256 of the manifest; rules naming the signing key accept the
 * measurements it lists (checked against the key at request time). */
static enum MHD_Result put_manifest(struct kbs_config *cfg, struct MHD_Connection *conn,
				    struct req *rq)
{
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_json_ json_t *j = NULL;
	_cleanup_free_ uint8_t *man = NULL;
	_cleanup_free_ char *sig_text = NULL;
	const char *m64 = NULL;
	size_t ml = 0;
	sp_release_sig sig;
	if (!admin_ok(cfg, conn, &err) ||
	    sp_json_parse(&j, rq->body.data, rq->body.len, "manifest upload", &err) < 0 ||
	    sp_json_get_string(j, "manifest", true, &m64, "manifest upload", &err) < 0)
		return fail(conn, "admin manifest", err);
	json_t *sj = json_object_get(j, "signature");
	if (json_is_string(sj))
		sig_text = sp_xstrdup(json_string_value(sj));
	else if (json_is_object(sj))
		sig_text = sp_json_dump_canonical(sj);
	else {
		sp_error(&err, SP_ERR_PARSE,
			 "manifest upload: signature: want the manifest.json.sig object");
		return fail(conn, "admin manifest", err);
	}
	if (sp_base64_decode(&man, &ml, m64, strlen(m64), SP_B64_STD, &err) < 0 ||
	    sp_release_sig_parse(&sig, sig_text, strlen(sig_text), &err) < 0) {
		sp_error_wrap(&err, "manifest upload");
		return fail(conn, "admin manifest", err);
	}
	uint8_t h[32];
	char id[65];
	sp_sha256(h, man, ml);
	sp_hex_encode(id, h, 32);
	if (!sp_memeq_ct(h, sig.manifest_sha256, 32)) {
		sp_error(&err, SP_ERR_PARSE,
			 "manifest upload: the signature is for another manifest (its "
			 "manifest_sha256 differs)");
		return fail(conn, "admin manifest", err);
	}
	if (sp_kbs_store_put_manifest(cfg->store, id, sig.key_id, man, ml, (uint8_t *)sig_text,
				      strlen(sig_text), &err) < 0)
		return fail(conn, "admin manifest", err);
	sp_log_info("admin: release manifest %.16s... stored (key %s)", id, sig.key_id);
	_cleanup_json_ json_t *ok = json_pack("{s:s,s:s}", "stored", id, "key_id", sig.key_id);
	return send_json(conn, 200, ok, NULL);
}

/* GET /kbs/v0/resource-policy: {"policies": [{"path", "rule"}, ...]};
 * GET /kbs/v0/resource-policy/<r>/<t>/<g>: {"path", "rule"} or 404. Admin
 * only: the rules say which pod policies get which secrets. */
static enum MHD_Result get_policy(struct kbs_config *cfg, struct MHD_Connection *conn,
				  const char *path)
{
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_json_ json_t *rule = NULL, *all = NULL, *reply = NULL;
	if (!admin_ok(cfg, conn, &err))
		return fail(conn, "admin resource-policy", err);
	if (!path) {
		if (sp_kbs_store_list_policies(cfg->store, &all, &err) < 0)
			return fail(conn, "admin resource-policy", err);
		reply = json_pack("{s:O}", "policies", all);
		return send_json(conn, 200, reply, NULL);
	}
	if (sp_kbs_resource_path_check(path, &err) < 0 ||
	    sp_kbs_store_get_policy(cfg->store, path, &rule, &err) < 0)
		return fail(conn, "admin resource-policy", err);
	if (!rule) {
		sp_error(&err, SP_ERR_NOT_FOUND,
			 "resource %s has no policy (access to it is denied)", path);
		return fail(conn, "admin resource-policy", err);
	}
	reply = json_pack("{s:s,s:O}", "path", path, "rule", rule);
	return send_json(conn, 200, reply, NULL);
}

/* DELETE /kbs/v0/resource-policy/<r>/<t>/<g>: the resource is then denied
 * to everyone again (no rule means deny). */
static enum MHD_Result delete_policy(struct kbs_config *cfg, struct MHD_Connection *conn,
				     const char *path)
{
	_cleanup_err_ sp_err *err = NULL;
	if (!admin_ok(cfg, conn, &err) || sp_kbs_resource_path_check(path, &err) < 0 ||
	    sp_kbs_store_delete_policy(cfg->store, path, &err) < 0)
		return fail(conn, "admin resource-policy", err);
	sp_log_info("admin: policy for %s deleted", path);
	_cleanup_json_ json_t *ok = json_pack("{s:s}", "deleted", path);
	return send_json(conn, 200, ok, NULL);
}

/* ---- Dispatch ------------------------------------------------------------------ */

enum MHD_Result kbs_handle(void *cls, struct MHD_Connection *conn, const char *url,
			   const char *method, const char *version, const char *upload,
			   size_t *upload_size, void **con_cls)
{
	struct kbs_config *cfg = cls;
	struct req *rq = *con_cls;
	bool is_res = !strncmp(url, PREFIX "resource/", strlen(PREFIX "resource/"));
	if (!rq) {
		rq = sp_xzalloc(sizeof(*rq));
		rq->max = is_res ? SP_KBS_MAX_RESOURCE : SP_KBS_MAX_BODY;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) {
		if (rq->body.len + *upload_size > rq->max)
			rq->too_large = true;
		else
			sp_buf_put(&rq->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (rq->too_large) {
		_cleanup_free_ char *d = sp_xasprintf("request body larger than %zu bytes", rq->max);
		return send_error(conn, SP_ERR_LIMIT, d);
	}
	bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
	if (post && !strcmp(url, PREFIX "auth"))
		return do_auth(cfg, conn, rq);
	if (post && !strcmp(url, PREFIX "attest"))
		return do_attest(cfg, conn, rq);
	bool del = !strcmp(method, "DELETE");
	const char *pol_path = !strncmp(url, PREFIX "resource-policy/",
					strlen(PREFIX "resource-policy/"))
				       ? url + strlen(PREFIX "resource-policy/")
				       : NULL;
	if (post && !strcmp(url, PREFIX "resource-policy"))
		return put_policy(cfg, conn, rq);
	if (post && !strcmp(url, PREFIX "manifest"))
		return put_manifest(cfg, conn, rq);
	if (get && !strcmp(url, PREFIX "resource-policy"))
		return get_policy(cfg, conn, NULL);
	if (get && pol_path)
		return get_policy(cfg, conn, pol_path);
	if (del && pol_path)
		return delete_policy(cfg, conn, pol_path);
	if (is_res && get)
		return get_resource(cfg, conn, url + strlen(PREFIX "resource/"));
	if (is_res && post)
		return put_resource(cfg, conn, url + strlen(PREFIX "resource/"), rq);
	_cleanup_free_ char *d = sp_xasprintf("no endpoint %s %.200s", method, url);
	return send_error(conn, SP_ERR_NOT_FOUND, d);
}
