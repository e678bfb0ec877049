/* SPDX-License-Identifier: Apache-2.0 */
/* Sealed secrets (Confidential Containers' format): parse and validate the
 * value, check its ES256 signature when required, and unseal a vault
 * secret by fetching its KBS resource after attestation. Every message
 * names the part that was wrong and never quotes the value, since a
 * sealed value may end up in logs and errors the host can read. */
#include <string.h>

#include "kbs-internal.h"
#include "sealpod/codec.h"
#include "sealpod/json.h"
#include "sealpod/sealed.h"

void sp_sealed_opts_init(sp_sealed_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->version = 1;
}

bool sp_sealed_is_sealed(const char *value, size_t len)
{
	return len >= strlen(SP_SEALED_PREFIX) &&
	       !memcmp(value, SP_SEALED_PREFIX, strlen(SP_SEALED_PREFIX));
}

void sp_sealed_clear(sp_sealed_secret *s)
{
	free(s->name);
	free(s->key_id);
	free(s->encrypted_key);
	free(s->encrypted_data);
	free(s->iv);
	if (s->header)
		json_decref(s->header);
	free(s->signing_input);
	free(s->signature);
	memset(s, 0, sizeof(*s));
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == ':' || c == '[' || c == ']' || c == '_';
}

int sp_sealed_uri_parse(sp_sealed_uri *out, const char *uri, sp_err **err)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(uri, "kbs://", 6))
		return sp_error(err, SP_ERR_PARSE, "resource name: want kbs://[host]/repo/type/tag");
	const char *p = uri + 6, *slash = strchr(p, '/');
	if (!slash)
		return sp_error(err, SP_ERR_PARSE, "resource name: want kbs://[host]/repo/type/tag");
	size_t hl = (size_t)(slash - p);
	if (hl >= sizeof(out->host))
		return sp_error(err, SP_ERR_PARSE, "resource name: host too long");
	for (size_t i = 0; i < hl; i++)
		if (!host_char(p[i]))
			return sp_error(err, SP_ERR_PARSE,
					"resource name: the host has a character outside "
					"[A-Za-z0-9.:_[]-]");
	memcpy(out->host, p, hl);
	const char *path = slash + 1;
	int r;
	if ((r = sp_kbs_resource_path_check(path, err)) < 0)
		return sp_error_wrap(err, "resource name");
	const char *s1 = strchr(path, '/'), *s2 = strchr(s1 + 1, '/');
	snprintf(out->repo, sizeof(out->repo), "%.*s", (int)(s1 - path), path);
	snprintf(out->type, sizeof(out->type), "%.*s", (int)(s2 - s1 - 1), s1 + 1);
	snprintf(out->tag, sizeof(out->tag), "%s", s2 + 1);
	return 0;
}

/* A base64 member (standard alphabet, as CoCo writes them). */
static int b64_member(const json_t *o, const char *key, uint8_t **out, size_t *len,
		      sp_err **err)
{
	const char *v = NULL;
	int r;
	if ((r = sp_json_get_string(o, key, true, &v, "sealed secret", err)) < 0)
		return r;
	if (sp_base64_decode(out, len, v, strlen(v), SP_B64_STD, NULL) < 0 &&
	    sp_base64_decode(out, len, v, strlen(v), SP_B64_URL, NULL) < 0)
		return sp_error(err, SP_ERR_PARSE, "sealed secret: %s is not base64", key);
	return 0;
}

static int parse_payload(sp_sealed_secret *out, const json_t *p, sp_err **err)
{
	const char *version = NULL, *type = NULL, *provider = NULL, *name = NULL, *key_id = NULL,
		   *wrap = NULL;
	json_t *settings = NULL, *ann = NULL;
	int r;
	if (!json_is_object(p))
		return sp_error(err, SP_ERR_PARSE, "sealed secret: the payload is not a JSON object");
	if ((r = sp_json_get_string(p, "version", true, &version, "sealed secret", err)) < 0 ||
	    (r = sp_json_get_string(p, "type", true, &type, "sealed secret", err)) < 0 ||
	    (r = sp_json_get_string(p, "provider", true, &provider, "sealed secret", err)) < 0 ||
	    (r = sp_json_get_object(p, "provider_settings", true, &settings, "sealed secret",
				    err)) < 0 ||
	    (r = sp_json_get_object(p, "annotations", false, &ann, "sealed secret", err)) < 0)
		return r;
	if (strcmp(version, SP_SEALED_VERSION))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"sealed secret: version `%.16s` (this guest reads " SP_SEALED_VERSION
				")", version);
	if (!*provider || strlen(provider) >= sizeof(out->provider))
		return sp_error(err, SP_ERR_PARSE, "sealed secret: provider is empty or too long");
	snprintf(out->provider, sizeof(out->provider), "%s", provider);
	if (!strcmp(type, "vault")) {
		out->type = SP_SEALED_VAULT;
		if ((r = sp_json_get_string(p, "name", true, &name, "sealed secret", err)) < 0)
			return r;
		if (strlen(name) > 1024)
			return sp_error(err, SP_ERR_PARSE, "sealed secret: name is too long");
		out->name = sp_xstrdup(name);
		if (!strcmp(provider, "kbs") &&
		    (r = sp_sealed_uri_parse(&out->resource, name, err)) < 0)
			return sp_error_wrap(err, "sealed secret");
		return 0;
	}
	if (!strcmp(type, "envelope")) {
		out->type = SP_SEALED_ENVELOPE;
		if ((r = sp_json_get_string(p, "key_id", true, &key_id, "sealed secret", err)) < 0 ||
		    (r = sp_json_get_string(p, "wrap_type", true, &wrap, "sealed secret", err)) < 0 ||
		    (r = b64_member(p, "encrypted_key", &out->encrypted_key,
				    &out->encrypted_key_len, err)) < 0 ||
		    (r = b64_member(p, "encrypted_data", &out->encrypted_data,
				    &out->encrypted_data_len, err)) < 0 ||
		    (r = b64_member(p, "iv", &out->iv, &out->iv_len, err)) < 0)
			return r;
		if (strcmp(wrap, "A256GCM"))
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"sealed secret: wrap_type `%.16s` (A256GCM only)", wrap);
		if (out->iv_len != 12)
			return sp_error(err, SP_ERR_PARSE,
					"sealed secret: iv has %zu bytes, A256GCM uses 12", out->iv_len);
		if (strlen(key_id) > 1024)
			return sp_error(err, SP_ERR_PARSE, "sealed secret: key_id is too long");
		out->key_id = sp_xstrdup(key_id);
		return 0;
	}
	return sp_error(err, SP_ERR_UNSUPPORTED,
			"sealed secret: type `%.16s` (vault or envelope)", type);
}

int sp_sealed_parse(sp_sealed_secret *out, const char *value, size_t len, sp_err **err)
{
	memset(out, 0, sizeof(*out));
	if (!sp_sealed_is_sealed(value, len))
		return sp_error(err, SP_ERR_PARSE, "not a sealed secret (no `sealed.` prefix)");
	if (len > SP_SEALED_MAX)
		return sp_error(err, SP_ERR_LIMIT, "sealed secret: longer than %u bytes",
				SP_SEALED_MAX);
	const char *v = value + strlen(SP_SEALED_PREFIX);
	size_t vl = len - strlen(SP_SEALED_PREFIX);
	/* header . payload . signature, each non-empty base64url */
	const char *d1 = memchr(v, '.', vl);
	const char *d2 = d1 ? memchr(d1 + 1, '.', vl - (size_t)(d1 + 1 - v)) : NULL;
	const char *end = v + vl;
	if (!d1 || !d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) || d1 == v ||
	    d2 == d1 + 1 || d2 + 1 == end)
		return sp_error(err, SP_ERR_PARSE,
				"sealed secret: want sealed.<header>.<payload>.<signature>");
	for (const char *c = v; c < end; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.' ||
		      *c == '='))
			return sp_error(err, SP_ERR_PARSE,
					"sealed secret: a character outside base64url");
	_cleanup_free_ uint8_t *pb = NULL, *hb = NULL;
	_cleanup_json_ json_t *payload = NULL;
	size_t pl = 0, hl = 0;
	int r;
	if (sp_base64_decode(&pb, &pl, d1 + 1, (size_t)(d2 - d1 - 1), SP_B64_URL, NULL) < 0) {
		r = sp_error(err, SP_ERR_PARSE, "sealed secret: the payload is not base64url");
		goto fail;
	}
	if ((r = sp_json_parse(&payload, pb, pl, "sealed secret payload", err)) < 0 ||
	    (r = parse_payload(out, payload, err)) < 0)
		goto fail;
	/* The header: JSON when signed; CoCo's unsigned values carry a dummy
	 * ("fakejwsheader"), kept as "no header". */
	json_t *h = NULL;
	if (sp_base64_decode(&hb, &hl, v, (size_t)(d1 - v), SP_B64_URL, NULL) == 0 &&
	    sp_json_parse(&h, hb, hl, "header", NULL) == 0) {
		if (json_is_object(h))
			out->header = h;
		else
			json_decref(h);
	}
	out->signing_input = sp_xstrndup(v, (size_t)(d2 - v));
	if (sp_base64_decode(&out->signature, &out->signature_len, d2 + 1,
			     (size_t)(end - d2 - 1), SP_B64_URL, NULL) < 0) {
		out->signature = NULL;
		out->signature_len = 0;
	}
	return 0;
fail:
	sp_sealed_clear(out);
	return r;
}

/* The JWK of the verification key: only the EC members are given to the
 * JWK parser (a signing key's JWK says alg ES256, which the KBS key parser,
 * made for encryption keys, would refuse). */
static int verification_key(sp_kbs_key **out, const uint8_t *d, size_t n, sp_err **err)
{
	_cleanup_json_ json_t *j = NULL, *ec = NULL;
	int r;
	if ((r = sp_json_parse(&j, d, n, "verification key", err)) < 0)
		return r;
	const char *kty = json_string_value(json_object_get(j, "kty"));
	const char *crv = json_string_value(json_object_get(j, "crv"));
	json_t *x = json_object_get(j, "x"), *y = json_object_get(j, "y");
	if (!kty || strcmp(kty, "EC") || !crv || strcmp(crv, "P-256") || !json_is_string(x) ||
	    !json_is_string(y))
		return sp_error(err, SP_ERR_PARSE,
				"verification key: want an EC P-256 JWK {kty, crv, x, y}");
	ec = json_pack("{s:s,s:s,s:O,s:O}", "kty", "EC", "crv", "P-256", "x", x, "y", y);
	return sp_kbs_jwk_parse(out, ec, err);
}

static int check_signature(const sp_sealed_secret *s, sp_sealed_fetch_fn fetch, void *ctx,
			   const sp_sealed_opts *o, sp_err **err)
{
	if (!s->header)
		return sp_error(err, SP_ERR_SIGNATURE,
				"sealed secret: unsigned (no JWS header), and this pod requires "
				"signed sealed secrets");
	const char *alg = json_string_value(json_object_get(s->header, "alg"));
	const char *kid = json_string_value(json_object_get(s->header, "kid"));
	if (!alg || strcmp(alg, "ES256"))
		return sp_error(err, SP_ERR_SIGNATURE, "sealed secret: the JWS alg is not ES256");
	if (!kid)
		return sp_error(err, SP_ERR_SIGNATURE, "sealed secret: the JWS header has no kid");
	sp_sealed_uri ku;
	int r;
	if ((r = sp_sealed_uri_parse(&ku, kid, err)) < 0)
		return sp_error(err, SP_ERR_SIGNATURE,
				"sealed secret: kid is not a kbs:// resource URI");
	if (*ku.host && (!o->allowed_host || strcmp(ku.host, o->allowed_host)))
		return sp_error(err, SP_ERR_DENIED,
				"sealed secret: kid names broker host `%s`, not this pod's", ku.host);
	_cleanup_free_ uint8_t *kd = NULL;
	size_t kl = 0;
	if ((r = fetch(ctx, &ku, &kd, &kl, err)) < 0)
		return sp_error_wrap(err, "sealed secret: verification key %s/%s/%s", ku.repo,
				     ku.type, ku.tag);
	_cleanup_kbs_key_ sp_kbs_key *key = NULL;
	if ((r = verification_key(&key, kd, kl, err)) < 0)
		return sp_error_wrap(err, "sealed secret: kid %s/%s/%s", ku.repo, ku.type, ku.tag);
	if (sp_kbs_es256_verify(key, s->signing_input, strlen(s->signing_input), s->signature,
				s->signature_len, err) < 0)
		return sp_error_wrap(err, "sealed secret (kid %s/%s/%s)", ku.repo, ku.type, ku.tag);
	return 0;
}

int sp_sealed_unseal(uint8_t **out, size_t *len, const sp_sealed_secret *s,
		     sp_sealed_fetch_fn fetch, void *ctx, const sp_sealed_opts *opts, sp_err **err)
{
	sp_sealed_opts dflt;
	if (!opts) {
		sp_sealed_opts_init(&dflt);
		opts = &dflt;
	}
	*out = NULL;
	*len = 0;
	int r;
	if (opts->require_signature && (r = check_signature(s, fetch, ctx, opts, err)) < 0)
		return r;
	if (s->type == SP_SEALED_ENVELOPE)
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"sealed secret: envelope secrets (provider `%s`) need a KMS "
				"provider; this guest unseals vault secrets from the key broker",
				s->provider);
	if (s->type != SP_SEALED_VAULT || strcmp(s->provider, "kbs"))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"sealed secret: provider `%s` (this guest unseals provider kbs)",
				s->provider);
	const sp_sealed_uri *u = &s->resource;
	if (*u->host && (!opts->allowed_host || strcmp(u->host, opts->allowed_host)))
		return sp_error(err, SP_ERR_DENIED,
				"sealed secret %s/%s/%s: names broker host `%s`, not this pod's",
				u->repo, u->type, u->tag, u->host);
	if ((r = fetch(ctx, u, out, len, err)) < 0)
		return sp_error_wrap(err, "sealed secret %s/%s/%s", u->repo, u->type, u->tag);
	return 0;
}

int sp_sealed_kbs_fetch(void *ctx, const sp_sealed_uri *uri, uint8_t **out, size_t *len,
			sp_err **err)
{
	sp_sealed_kbs *k = ctx;
	int r;
	if (!k->att.token &&
	    (r = sp_kbs_client_attest(&k->att, k->url, k->tee, k->evidence, k->evidence_ctx,
				      k->opts, err)) < 0)
		return r;
	return sp_kbs_client_fetch(out, len, k->url, k->att.token, k->att.key, uri->repo,
				   uri->type, uri->tag, k->opts, err);
}

void sp_sealed_kbs_clear(sp_sealed_kbs *k)
{
	sp_kbs_attestation_clear(&k->att);
}

int sp_sealed_seal_vault(char **out, const char *resource_uri, const sp_kbs_key *key,
			 const char *kid, sp_err **err)
{
	sp_sealed_uri u;
	int r;
	*out = NULL;
	if ((r = sp_sealed_uri_parse(&u, resource_uri, err)) < 0)
		return r;
	_cleanup_json_ json_t *p = json_pack(
		"{s:s,s:s,s:s,s:s,s:{},s:{}}", "version", SP_SEALED_VERSION, "type", "vault",
		"provider", "kbs", "name", resource_uri, "provider_settings", "annotations");
	_cleanup_free_ char *pj = sp_json_dump_canonical(p);
	_cleanup_free_ char *p64 = sp_base64_encode(pj, strlen(pj), SP_B64_URL);
	if (!key) {
		/* CoCo's unsigned form. */
		*out = sp_xasprintf(SP_SEALED_PREFIX "fakejwsheader.%s.fakesignature", p64);
		return 0;
	}
	if (!kid || (r = sp_sealed_uri_parse(&u, kid, err)) < 0)
		return sp_error(err, SP_ERR_INVALID, "sealing: kid must be a kbs:// resource URI");
	_cleanup_json_ json_t *h = json_pack("{s:s,s:s}", "alg", "ES256", "kid", kid);
	_cleanup_free_ char *hj = sp_json_dump_canonical(h);
	_cleanup_free_ char *h64 = sp_base64_encode(hj, strlen(hj), SP_B64_URL);
	_cleanup_free_ char *input = sp_xasprintf("%s.%s", h64, p64);
	uint8_t sig[64];
	if ((r = sp_kbs_es256_sign(sig, key, input, strlen(input), err)) < 0)
		return r;
	_cleanup_free_ char *s64 = sp_base64_encode(sig, sizeof(sig), SP_B64_URL);
	*out = sp_xasprintf(SP_SEALED_PREFIX "%s.%s", input, s64);
	return 0;
}
