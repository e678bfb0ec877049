/* SPDX-License-Identifier: Apache-2.0 */
/* The KBS protocol's request bodies, JCS and the REPORT_DATA binding,
 * resource paths, error mapping and the per-resource policy. */
#include <string.h>
#include <strings.h>

#include "kbs-internal.h"
#include "sealpod/bytes.h"
#include "sealpod/hash.h"
#include "sealpod/codec.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"
#include "sealpod/release.h"
#include "sealpod/snp.h"

/* ---- JCS (RFC 8785) --------------------------------------------------- */

/* Next UTF-16 code unit of a UTF-8 string (jansson strings are valid
 * UTF-8); *pend holds the low surrogate still due. 0 at the end. */
static unsigned utf16_next(const unsigned char **s, const unsigned char *end,
			   unsigned *pend)
{
	if (*pend) {
		unsigned u = *pend;
		*pend = 0;
		return u;
	}
	if (*s >= end)
		return 0;
	unsigned c = *(*s)++, cp, n;
	if (c < 0x80)
		return c;
	n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
	cp = c & (0x3f >> n);
	for (unsigned i = 0; i < n && *s < end; i++)
		cp = cp << 6 | (*(*s)++ & 0x3f);
	if (cp >= 0x10000) {
		cp -= 0x10000;
		*pend = 0xdc00 | (cp & 0x3ff);
		return 0xd800 | (cp >> 10);
	}
	return cp;
}

/* JCS sorts member names by their UTF-16 code units. */
static int jcs_key_cmp(const void *a, const void *b)
{
	const char *ka = *(const char *const *)a, *kb = *(const char *const *)b;
	const unsigned char *pa = (const unsigned char *)ka, *pb = (const unsigned char *)kb;
	const unsigned char *ea = pa + strlen(ka), *eb = pb + strlen(kb);
	unsigned sa = 0, sb = 0;
	for (;;) {
		bool da = pa >= ea && !sa, db = pb >= eb && !sb;
		if (da || db)
			return da && db ? 0 : da ? -1 : 1;
		unsigned ua = utf16_next(&pa, ea, &sa), ub = utf16_next(&pb, eb, &sb);
		if (ua != ub)
			return ua < ub ? -1 : 1;
	}
}

static void jcs_string(sp_buf *b, const char *s, size_t n)
{
	sp_buf_put_u8(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': sp_buf_put(b, "\\\"", 2); break;
		case '\\': sp_buf_put(b, "\\\\", 2); break;
		case '\b': sp_buf_put(b, "\\b", 2); break;
		case '\f': sp_buf_put(b, "\\f", 2); break;
		case '\n': sp_buf_put(b, "\\n", 2); break;
		case '\r': sp_buf_put(b, "\\r", 2); break;
		case '\t': sp_buf_put(b, "\\t", 2); break;
		default:
			if (c < 0x20)
				sp_buf_printf(b, "\\u%04x", c);
			else
				sp_buf_put_u8(b, c);
		}
	}
	sp_buf_put_u8(b, '"');
}

static int jcs(sp_buf *b, const json_t *j, int depth, sp_err **err)
{
	if (depth > 32)
		return sp_error(err, SP_ERR_LIMIT, "JSON nested deeper than 32 levels");
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		size_t n = json_object_size(j), i = 0;
		const char **keys = sp_xcalloc(n ? n : 1, sizeof(*keys));
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)j, k, v)
			keys[i++] = k;
		qsort(keys, n, sizeof(*keys), jcs_key_cmp);
		sp_buf_put_u8(b, '{');
		for (i = 0; i < n; i++) {
			if (i)
				sp_buf_put_u8(b, ',');
			jcs_string(b, keys[i], strlen(keys[i]));
			sp_buf_put_u8(b, ':');
			int r = jcs(b, json_object_get(j, keys[i]), depth + 1, err);
			if (r < 0) {
				free(keys);
				return r;
			}
		}
		free(keys);
		sp_buf_put_u8(b, '}');
		return 0;
	}
	case JSON_ARRAY:
		sp_buf_put_u8(b, '[');
		for (size_t i = 0; i < json_array_size(j); i++) {
			if (i)
				sp_buf_put_u8(b, ',');
			int r = jcs(b, json_array_get(j, i), depth + 1, err);
			if (r < 0)
				return r;
		}
		sp_buf_put_u8(b, ']');
		return 0;
	case JSON_STRING:
		jcs_string(b, json_string_value(j), json_string_length(j));
		return 0;
	case JSON_INTEGER: {
		json_int_t v = json_integer_value(j);
		/* Beyond 2^53 an ES6 number would be rounded: refuse. */
		if (v > (1LL << 53) || v < -(1LL << 53))
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"JCS: integer %lld is beyond 2^53", (long long)v);
		sp_buf_printf(b, "%lld", (long long)v);
		return 0;
	}
	case JSON_TRUE: sp_buf_put(b, "true", 4); return 0;
	case JSON_FALSE: sp_buf_put(b, "false", 5); return 0;
	case JSON_NULL: sp_buf_put(b, "null", 4); return 0;
	default:
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"JCS: real numbers are not supported here");
	}
}

int sp_kbs_jcs(char **out, const json_t *j, sp_err **err)
{
	sp_buf b = SP_BUF_INIT;
	int r = jcs(&b, j, 0, err);
	if (r < 0) {
		sp_buf_free(&b);
		return r;
	}
	sp_buf_terminate(&b);
	*out = (char *)sp_buf_steal(&b, NULL);
	return 0;
}

int sp_kbs_report_data(uint8_t out[SP_TEE_REPORT_DATA_LEN], const char *nonce,
		       const json_t *tee_pubkey, sp_err **err)
{
	_cleanup_json_ json_t *rd = json_pack("{s:s,s:O}", "nonce", nonce, "tee-pubkey",
					      tee_pubkey);
	if (!rd)
		return sp_error(err, SP_ERR_INVALID, "runtime data: bad nonce or key");
	_cleanup_free_ char *s = NULL;
	int r = sp_kbs_jcs(&s, rd, err);
	if (r < 0)
		return sp_error_wrap(err, "runtime data");
	memset(out, 0, SP_TEE_REPORT_DATA_LEN);
	sp_sha384(out, s, strlen(s));
	return 0;
}

/* ---- Requests ----------------------------------------------------------- */

int sp_kbs_auth_req_parse(sp_kbs_auth_req *out, const void *body, size_t len, sp_err **err)
{
	_cleanup_json_ json_t *j = NULL;
	const char *version = NULL, *tee = NULL;
	json_t *extra = NULL;
	int r;
	memset(out, 0, sizeof(*out));
	if ((r = sp_json_parse(&j, body, len, "auth request", err)) < 0)
		return r;
	if (!json_is_object(j))
		return sp_error(err, SP_ERR_PARSE, "auth request: not a JSON object");
	if ((r = sp_json_get_string(j, "version", true, &version, "auth request", err)) < 0 ||
	    (r = sp_json_get_string(j, "tee", true, &tee, "auth request", err)) < 0 ||
	    (r = sp_json_get_object(j, "extra-params", false, &extra, "auth request", err)) < 0)
		return r;
	if (strcmp(version, SP_KBS_PROTOCOL_VERSION))
		return sp_error(err, SP_ERR_PROTOCOL,
				"protocol version `%.32s` is not supported: this broker speaks "
				"exactly " SP_KBS_PROTOCOL_VERSION, version);
	if (!*tee || strlen(tee) >= sizeof(out->tee))
		return sp_error(err, SP_ERR_PARSE, "auth request: tee `%.32s` is not a TEE name",
				tee);
	strcpy(out->tee, tee);
	return 0;
}

void sp_kbs_attest_req_clear(sp_kbs_attest_req *r)
{
	free(r->nonce);
	if (r->tee_pubkey)
		json_decref(r->tee_pubkey);
	free(r->report);
	for (size_t i = 0; i < r->n_certs; i++)
		free(r->certs[i]);
	free(r->certs);
	free(r->cert_lens);
	memset(r, 0, sizeof(*r));
}

#define MAX_CERTS 8
#define MAX_CERT_LEN (16u * 1024)

/* Bytes from a JSON value: base64 (standard or URL-safe), or an array of
 * byte values (as serde writes Vec<u8>); hex too when hex_len matches. */
static int json_bytes(uint8_t **out, size_t *len, const json_t *v, size_t hex_len,
		      size_t max, const char *what, sp_err **err)
{
	if (json_is_array(v)) {
		size_t n = json_array_size(v);
		if (n == 0 || n > max)
			return sp_error(err, SP_ERR_PARSE, "%s: %zu bytes (1..%zu)", what, n, max);
		uint8_t *b = sp_xmalloc(n);
		for (size_t i = 0; i < n; i++) {
			json_t *e = json_array_get(v, i);
			json_int_t x = json_is_integer(e) ? json_integer_value(e) : -1;
			if (x < 0 || x > 255) {
				free(b);
				return sp_error(err, SP_ERR_PARSE, "%s[%zu]: not a byte value", what,
						i);
			}
			b[i] = (uint8_t)x;
		}
		*out = b;
		*len = n;
		return 0;
	}
	if (!json_is_string(v))
		return sp_error(err, SP_ERR_PARSE, "%s: want a base64 string", what);
	const char *s = json_string_value(v);
	size_t sl = json_string_length(v);
	bool hex = hex_len && sl == hex_len;
	for (size_t i = 0; hex && i < sl; i++)
		hex = sp_hex_digit(s[i]) >= 0;
	int r;
	if (hex)
		r = sp_hex_decode_alloc(out, len, s, err);
	else if ((r = sp_base64_decode(out, len, s, sl, SP_B64_STD, NULL)) < 0)
		r = sp_base64_decode(out, len, s, sl, SP_B64_URL, err);
	if (r < 0)
		return sp_error_wrap(err, "%s", what);
	if (*len == 0 || *len > max) {
		free(*out);
		*out = NULL;
		return sp_error(err, SP_ERR_PARSE, "%s: %zu bytes (1..%zu)", what, *len, max);
	}
	return 0;
}

static void add_cert(sp_kbs_attest_req *r, uint8_t *der, size_t len)
{
	r->certs = sp_xrealloc(r->certs, (r->n_certs + 1) * sizeof(*r->certs));
	r->cert_lens = sp_xrealloc(r->cert_lens, (r->n_certs + 1) * sizeof(*r->cert_lens));
	r->certs[r->n_certs] = der;
	r->cert_lens[r->n_certs++] = len;
}

/* A cert_chain entry's cert_type as the sev crate writes it: "VCEK",
 * "VLEK", "ASK", "ARK" are certificates for the verifier; "Empty", "CRL"
 * and {"OTHER": guid} are skipped. An entry without cert_type is taken. */
static bool cert_type_wanted(const json_t *t)
{
	if (!t)
		return true;
	const char *s = json_string_value(t);
	return s && (!strcmp(s, "VCEK") || !strcmp(s, "VLEK") || !strcmp(s, "ASK") ||
		     !strcmp(s, "ARK"));
}

/* cert_chain: null, a base64 GHCB certificate table (what sealpod's
 * evidence endpoint gives), or an array of certificates, each a string
 * (base64 DER, or PEM) or {"cert_type", "data": base64 | [bytes]}. */
static int parse_cert_chain(sp_kbs_attest_req *out, const json_t *cc, sp_err **err)
{
	int r;
	if (!cc || json_is_null(cc))
		return 0;
	if (json_is_string(cc)) {
		_cleanup_free_ uint8_t *tbl = NULL;
		size_t tl = 0;
		if ((r = json_bytes(&tbl, &tl, cc, 0, MAX_CERTS * MAX_CERT_LEN, "cert_chain",
				    err)) < 0)
			return r;
		sp_snp_cert_entry ents[MAX_CERTS];
		size_t n = 0;
		if ((r = sp_snp_cert_table_parse(ents, MAX_CERTS, &n, tbl, tl, err)) < 0)
			return sp_error_wrap(err, "cert_chain (certificate table)");
		for (size_t i = 0; i < n; i++)
			add_cert(out, sp_xmemdup(ents[i].der, ents[i].len), ents[i].len);
		return 0;
	}
	if (!json_is_array(cc))
		return sp_error(err, SP_ERR_PARSE, "cert_chain: want an array, a string or null");
	if (json_array_size(cc) > MAX_CERTS)
		return sp_error(err, SP_ERR_PARSE, "cert_chain: more than %d certificates",
				MAX_CERTS);
	size_t i;
	json_t *e;
	json_array_foreach(cc, i, e) {
		if (json_is_object(e) && !cert_type_wanted(json_object_get(e, "cert_type")))
			continue;
		json_t *data = json_is_object(e) ? json_object_get(e, "data") : e;
		uint8_t *der = NULL;
		size_t dl = 0;
		if (json_is_string(data) && !strncmp(json_string_value(data), "-----BEGIN", 10)) {
			dl = json_string_length(data);
			if (dl > MAX_CERT_LEN * 2)
				return sp_error(err, SP_ERR_PARSE, "cert_chain[%zu]: too large", i);
			der = sp_xmemdup(json_string_value(data), dl);
		} else {
			char what[48];
			snprintf(what, sizeof(what), "cert_chain[%zu]", i);
			if (!data)
				return sp_error(err, SP_ERR_PARSE, "%s: no data", what);
			if ((r = json_bytes(&der, &dl, data, 0, MAX_CERT_LEN, what, err)) < 0)
				return r;
		}
		add_cert(out, der, dl);
	}
	return 0;
}

int sp_kbs_attest_req_parse(sp_kbs_attest_req *out, const void *body, size_t len,
			    sp_err **err)
{
	_cleanup_json_ json_t *j = NULL, *pe_parsed = NULL;
	json_t *rd = NULL, *te = NULL, *pe = NULL, *pk = NULL;
	const char *nonce = NULL;
	int r;
	memset(out, 0, sizeof(*out));
	if ((r = sp_json_parse(&j, body, len, "attest request", err)) < 0)
		return r;
	if (!json_is_object(j))
		return sp_error(err, SP_ERR_PARSE, "attest request: not a JSON object");
	if ((r = sp_json_get_object(j, "runtime-data", true, &rd, "attest request", err)) < 0 ||
	    (r = sp_json_get_string(rd, "nonce", true, &nonce, "runtime-data", err)) < 0 ||
	    (r = sp_json_get_object(rd, "tee-pubkey", true, &pk, "runtime-data", err)) < 0 ||
	    (r = sp_json_get_object(j, "tee-evidence", true, &te, "attest request", err)) < 0)
		return r;
	pe = json_object_get(te, "primary_evidence");
	/* guest-components may carry the evidence as a JSON string. */
	if (json_is_string(pe)) {
		if ((r = sp_json_parse(&pe_parsed, json_string_value(pe), json_string_length(pe),
				       "tee-evidence.primary_evidence", err)) < 0)
			return r;
		pe = pe_parsed;
	}
	if (!json_is_object(pe))
		return sp_error(err, SP_ERR_PARSE,
				"tee-evidence.primary_evidence: missing or not an object");
	json_t *rep = json_object_get(pe, "attestation_report");
	if (!rep)
		return sp_error(err, SP_ERR_PARSE,
				"primary_evidence.attestation_report: missing");
	if (json_is_object(rep)) {
		/* guest-components: the sev crate's field-by-field object. */
		out->report = sp_xmalloc(SP_SNP_REPORT_LEN);
		out->report_len = SP_SNP_REPORT_LEN;
		if ((r = sp_kbs_sev_report_from_json(out->report, rep, err)) < 0) {
			sp_error_wrap(err, "primary_evidence");
			goto fail;
		}
	} else if ((r = json_bytes(&out->report, &out->report_len, rep,
				   2 * SP_SNP_REPORT_LEN, SP_SNP_REPORT_LEN,
				   "primary_evidence.attestation_report", err)) < 0) {
		goto fail;
	}
	if (out->report_len != SP_SNP_REPORT_LEN) {
		r = sp_error(err, SP_ERR_PARSE,
			     "primary_evidence.attestation_report: %zu bytes, want %d",
			     out->report_len, SP_SNP_REPORT_LEN);
		goto fail;
	}
	if ((r = parse_cert_chain(out, json_object_get(pe, "cert_chain"), err)) < 0)
		goto fail;
	if (strlen(nonce) > 256) {
		r = sp_error(err, SP_ERR_PARSE, "runtime-data.nonce: too long");
		goto fail;
	}
	out->nonce = sp_xstrdup(nonce);
	out->tee_pubkey = json_incref(pk);
	return 0;
fail:
	sp_kbs_attest_req_clear(out);
	return r;
}

static bool comp_ok(const char *s, size_t n)
{
	if (n == 0 || n > 128 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

int sp_kbs_resource_path_check(const char *path, sp_err **err)
{
	const char *p = path;
	for (int i = 0; i < 3; i++) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if ((i < 2) != !!slash || !comp_ok(p, n))
			return sp_error(err, SP_ERR_PARSE,
					"resource path `%.200s`: want repository/type/tag, each "
					"[A-Za-z0-9_.-] not starting with '.'", path);
		p += n + 1;
	}
	return 0;
}

int sp_kbs_http_status(int code)
{
	switch (code) {
	case SP_ERR_PARSE:
	case SP_ERR_INVALID:
	case SP_ERR_UNSUPPORTED:
		return 400;
	case SP_ERR_LIMIT:
		return 413;
	case SP_ERR_DENIED:
		return 403;
	case SP_ERR_PROTOCOL:
	case SP_ERR_STATE:
	case SP_ERR_SIGNATURE:
	case SP_ERR_CERTIFICATE:
	case SP_ERR_APPRAISAL:
		return 401;
	case SP_ERR_NOT_FOUND:
		return 404;
	default:
		return 500;
	}
}

const char *sp_kbs_error_type(int code)
{
	switch (code) {
	case SP_ERR_PARSE:
	case SP_ERR_INVALID:
	case SP_ERR_UNSUPPORTED:
		return "InvalidRequest";
	case SP_ERR_LIMIT:
		return "PayloadTooLarge";
	case SP_ERR_DENIED:
		return "PolicyDeny";
	case SP_ERR_PROTOCOL:
		return "ProtocolVersion";
	case SP_ERR_STATE:
		return "UnAuthenticatedCookie";
	case SP_ERR_SIGNATURE:
	case SP_ERR_CERTIFICATE:
	case SP_ERR_APPRAISAL:
		return "AttestationFailed";
	case SP_ERR_NOT_FOUND:
		return "ResourceNotFound";
	default:
		return "InternalError";
	}
}

/* ---- Resource policy ------------------------------------------------------ */

static int hex_list(const json_t *rule, const char *key, size_t hexlen, size_t *count,
		    sp_err **err)
{
	json_t *a = json_object_get(rule, key);
	*count = 0;
	if (!a)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > 256)
		return sp_error(err, SP_ERR_PARSE, "policy.%s: want an array of hex strings", key);
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) {
		const char *s = json_string_value(e);
		bool ok = s && strlen(s) == hexlen;
		for (size_t k = 0; ok && k < hexlen; k++)
			ok = sp_hex_digit(s[k]) >= 0;
		if (!ok)
			return sp_error(err, SP_ERR_PARSE, "policy.%s[%zu]: want %zu hex digits", key,
					i, hexlen);
	}
	*count = json_array_size(a);
	return 0;
}

int sp_kbs_policy_validate(const json_t *rule, sp_err **err)
{
	if (!json_is_object(rule))
		return sp_error(err, SP_ERR_PARSE, "policy: want a JSON object");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)rule, k, v) {
		if (strcmp(k, "host_data") && strcmp(k, "measurements") && strcmp(k, "manifest_key"))
			return sp_error(err, SP_ERR_PARSE,
					"policy: unknown member `%.64s` (host_data, measurements, "
					"manifest_key)", k);
	}
	size_t nh, nm;
	int r;
	if ((r = hex_list(rule, "host_data", 2 * SP_SNP_HOST_DATA_LEN, &nh, err)) < 0 ||
	    (r = hex_list(rule, "measurements", 2 * SP_SNP_MEASUREMENT_LEN, &nm, err)) < 0)
		return r;
	json_t *mk = json_object_get(rule, "manifest_key");
	if (mk) {
		/* A release manifest signing key (Ed25519 public key, PEM). */
		sp_release_key *key = NULL;
		if (!json_is_string(mk))
			return sp_error(err, SP_ERR_PARSE,
					"policy.manifest_key: want the PEM of an Ed25519 public key");
		if ((r = sp_release_key_load(&key, (const uint8_t *)json_string_value(mk),
					     json_string_length(mk), err)) < 0)
			return sp_error_wrap(err, "policy.manifest_key");
		sp_release_key_free(key);
	}
	if (!nh && !nm && !mk)
		return sp_error(err, SP_ERR_PARSE,
				"policy: name at least one host_data or measurements value or a "
				"manifest_key; a rule that matches every TEE is not accepted");
	return 0;
}

static int match_list(const json_t *rule, const char *key, const json_t *claims,
		      const char *claim, const char *what, const char *path, sp_err **err)
{
	json_t *a = json_object_get(rule, key);
	if (!a)
		return 0;
	const char *have = json_string_value(json_object_get(claims, claim));
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) {
		if (have && !strcasecmp(have, json_string_value(e)))
			return 0;
	}
	return sp_error(err, SP_ERR_DENIED,
			"resource %s: %s %s is not among the values its policy allows", path,
			what, have ? have : "(none)");
}

int sp_kbs_policy_check(const json_t *rule, const char *path, const json_t *claims,
			const json_t *manifest_measurements, sp_err **err)
{
	int r;
	if (!rule)
		return sp_error(err, SP_ERR_DENIED,
				"resource %s has no policy; access is denied by default", path);
	if ((r = sp_kbs_policy_validate(rule, err)) < 0)
		return sp_error(err, SP_ERR_DENIED, "resource %s: its policy is invalid", path);
	if ((r = match_list(rule, "host_data", claims, "host_data", "HOST_DATA", path, err)) < 0 ||
	    (r = match_list(rule, "measurements", claims, "measurement", "MEASUREMENT", path,
			    err)) < 0)
		return r;
	if (json_object_get(rule, "manifest_key")) {
		const char *have = json_string_value(json_object_get(claims, "measurement"));
		size_t i;
		json_t *e;
		json_array_foreach(manifest_measurements, i, e) {
			if (have && json_is_string(e) && !strcasecmp(have, json_string_value(e)))
				return 0;
		}
		return sp_error(err, SP_ERR_DENIED,
				"resource %s: MEASUREMENT %s is not listed by any release manifest "
				"signed by its policy's manifest_key (%zu listed)", path,
				have ? have : "(none)", json_array_size(manifest_measurements));
	}
	return 0;
}
