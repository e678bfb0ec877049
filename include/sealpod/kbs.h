/* SPDX-License-Identifier: Apache-2.0 */
/* The key broker (sealpod-kbs) and its client: the Trustee KBS protocol
 * 0.4.0 (RCAR: auth, attest, resource), JOSE pieces (JWK, JWE, a JWT for
 * the attestation token, JCS), the broker's SQLite store and per-resource
 * policy. docs/kbs.md explains the choices.
 *
 * Guest-safe part (the agent may use it): keys, JWE, JCS, the client.
 * Host-only part: sp_kbs_store_* (SQLite); its object is never reached from
 * the client, so the agent does not link libsqlite. */
#ifndef SEALPOD_KBS_H
#define SEALPOD_KBS_H

#include <jansson.h>
#include <time.h>

#include "sealpod/common.h"
#include "sealpod/err.h"
#include "sealpod/tee.h"

#define SP_KBS_PROTOCOL_VERSION "0.4.0"
#define SP_KBS_COOKIE "kbs-session-id"
#define SP_KBS_SESSION_TTL 300 /* seconds, as Trustee's default */
#define SP_KBS_NONCE_LEN 32    /* random bytes behind the base64 nonce */
#define SP_KBS_ERROR_TYPE_PREFIX \
	"https://github.com/confidential-containers/kbs/errors/"
#define SP_KBS_MAX_BODY (1u << 20)     /* any request body but a resource */
#define SP_KBS_MAX_RESOURCE (4u << 20) /* a stored resource */

/* ---- Keys and JWK ---------------------------------------------------- */

/* An EC P-256 or RSA key, public or with its private half. */
typedef struct sp_kbs_key sp_kbs_key;

SP_PUBLIC int sp_kbs_key_generate_ec(sp_kbs_key **out, sp_err **err);
SP_PUBLIC int sp_kbs_key_generate_rsa(sp_kbs_key **out, unsigned bits,
				      sp_err **err);
/* A private key from PEM (EC P-256 or RSA). */
SP_PUBLIC int sp_kbs_key_from_pem(sp_kbs_key **out, const uint8_t *pem,
				  size_t len, sp_err **err);
/* PEM of the private key (for --token-key files and tests). */
SP_PUBLIC char *sp_kbs_key_to_pem(const sp_kbs_key *k);
SP_PUBLIC void sp_kbs_key_free(sp_kbs_key *k);
static inline void sp_kbs_key_freep(sp_kbs_key **k)
{
	if (*k)
		sp_kbs_key_free(*k);
}
#define _cleanup_kbs_key_ __attribute__((cleanup(sp_kbs_key_freep)))

/* The public JWK: {"kty":"EC","crv":"P-256","alg":"ECDH-ES+A256KW","x","y"}
 * or {"kty":"RSA","alg":"RSA-OAEP-256","n","e"}. */
SP_PUBLIC json_t *sp_kbs_key_public_jwk(const sp_kbs_key *k);
/* A public key from a JWK (the tee-pubkey of an attest request). Only
 * EC P-256 with alg ECDH-ES+A256KW (or no alg) and RSA (>= 2048 bits)
 * with alg RSA-OAEP-256 (or no alg) are accepted. */
SP_PUBLIC int sp_kbs_jwk_parse(sp_kbs_key **out, const json_t *jwk,
			       sp_err **err);

/* ES256 (ECDSA P-256, SHA-256) over bytes, the signature as raw r||s. */
SP_PUBLIC int sp_kbs_es256_sign(uint8_t out[64], const sp_kbs_key *key,
				const void *data, size_t len, sp_err **err);
SP_PUBLIC int sp_kbs_es256_verify(const sp_kbs_key *key, const void *data,
				  size_t len, const uint8_t *sig, size_t sig_len,
				  sp_err **err);

/* ---- JWE (RFC 7516 JSON serialization, one recipient) ----------------- */

/* Encrypts to recipient: A256GCM with a random key wrapped by
 * ECDH-ES+A256KW (EC) or RSA-OAEP-256 (RSA). *out = {protected,
 * encrypted_key, iv, ciphertext, tag}. */
SP_PUBLIC int sp_kbs_jwe_encrypt(json_t **out, const sp_kbs_key *recipient,
				 const uint8_t *data, size_t len,
				 sp_err **err);
/* Decrypts with the private key; any change to any member fails. */
SP_PUBLIC int sp_kbs_jwe_decrypt(uint8_t **out, size_t *len,
				 const sp_kbs_key *key, const json_t *jwe,
				 sp_err **err);

/* ---- JCS and REPORT_DATA ----------------------------------------------- */

/* RFC 8785 canonical JSON of objects, arrays, strings, integers, true,
 * false and null (reals are refused: nothing here carries them). */
SP_PUBLIC int sp_kbs_jcs(char **out, const json_t *j, sp_err **err);
/* REPORT_DATA for SNP: SHA-384 of JCS({"nonce","tee-pubkey"}), zero-padded
 * to 64 bytes (guest-components' binding for protocol 0.4.0). */
SP_PUBLIC int sp_kbs_report_data(uint8_t out[SP_TEE_REPORT_DATA_LEN],
				 const char *nonce, const json_t *tee_pubkey,
				 sp_err **err);

/* ---- Requests ---------------------------------------------------------- */

/* POST /kbs/v0/auth. A version other than 0.4.0 fails SP_ERR_UNSUPPORTED
 * (the broker answers 401 ProtocolVersion); malformed JSON SP_ERR_PARSE. */
typedef struct sp_kbs_auth_req {
	char tee[32];
} sp_kbs_auth_req;
SP_PUBLIC int sp_kbs_auth_req_parse(sp_kbs_auth_req *out, const void *body,
				    size_t len, sp_err **err);

/* POST /kbs/v0/attest (0.4.0 shape). */
typedef struct sp_kbs_attest_req {
	char *nonce;
	json_t *tee_pubkey;       /* the JWK as sent */
	uint8_t *report;          /* attestation_report, decoded */
	size_t report_len;
	uint8_t **certs;          /* DER certificates from cert_chain */
	size_t *cert_lens;
	size_t n_certs;
} sp_kbs_attest_req;
SP_PUBLIC int sp_kbs_attest_req_parse(sp_kbs_attest_req *out,
				      const void *body, size_t len,
				      sp_err **err);
SP_PUBLIC void sp_kbs_attest_req_clear(sp_kbs_attest_req *r);

/* The field-by-field JSON form of an SNP report that CoCo's guest
 * components send as attestation_report: the serde layout of the virtee
 * `sev` crate 6.x/7.x (docs/kbs.md). from_json rebuilds the 1184 bytes
 * (reserved bytes zero) and checks they parse as a report; to_json is the
 * inverse and refuses a report whose reserved bytes are not zero. */
SP_PUBLIC int sp_kbs_sev_report_from_json(uint8_t out[SP_SNP_REPORT_LEN],
					  const json_t *obj, sp_err **err);
SP_PUBLIC int sp_kbs_sev_report_to_json(json_t **out, const uint8_t *report,
					size_t len, sp_err **err);
/* Rewrites evidence from sp_kbs_evidence_json (base64) in place into the
 * sev form: the report as an object, each certificate's data as an array
 * of byte values. */
SP_PUBLIC int sp_kbs_evidence_to_sev(json_t *evidence, sp_err **err);

/* "repo/type/tag" from a path below /kbs/v0/resource/: exactly three
 * components of [A-Za-z0-9_.-], none starting with '.'. */
SP_PUBLIC int sp_kbs_resource_path_check(const char *path, sp_err **err);

/* The HTTP status and RFC 7807 type name the broker uses for an error
 * code (parse 400, denied 403, signature/certificate/appraisal/
 * unsupported/state 401, not-found 404, limit 413, else 500). */
SP_PUBLIC int sp_kbs_http_status(int code);
SP_PUBLIC const char *sp_kbs_error_type(int code);

/* ---- Resource policy ----------------------------------------------------
 * One rule per resource: {"host_data":[hex...],"measurements":[hex...],
 * "manifest_key": "<Ed25519 public key PEM>"} (at least one non-empty list
 * or the key). A request is allowed only when every list present contains
 * the attested value and, with manifest_key, the measurement is one that a
 * release manifest signed by that key lists; no rule means deny. */
SP_PUBLIC int sp_kbs_policy_validate(const json_t *rule, sp_err **err);
/* claims: the broker's token claims (docs/kbs.md); manifest_measurements:
 * the hex measurements listed by the stored manifests that verify under
 * the rule's manifest_key (ignored without one; NULL = none). Fails
 * SP_ERR_DENIED with a message naming the value that did not match. */
SP_PUBLIC int sp_kbs_policy_check(const json_t *rule, const char *path,
				  const json_t *claims,
				  const json_t *manifest_measurements, sp_err **err);

/* ---- Attestation token (a JWT, ES256) --------------------------------- */

SP_PUBLIC int sp_kbs_token_sign(char **out, const sp_kbs_key *key,
				const json_t *claims, sp_err **err);
/* Checks the signature, "exp" (against now) and returns the claims. */
SP_PUBLIC int sp_kbs_token_verify(json_t **claims, const sp_kbs_key *key,
				  const char *token, time_t now, sp_err **err);

/* ---- Store (SQLite; host only) ------------------------------------------ */

typedef struct sp_kbs_store sp_kbs_store;
SP_PUBLIC int sp_kbs_store_open(sp_kbs_store **out, const char *path,
				sp_err **err);
SP_PUBLIC void sp_kbs_store_close(sp_kbs_store *s);
SP_PUBLIC int sp_kbs_store_put_resource(sp_kbs_store *s, const char *path,
					const uint8_t *data, size_t len,
					sp_err **err);
SP_PUBLIC int sp_kbs_store_get_resource(sp_kbs_store *s, const char *path,
					uint8_t **data, size_t *len,
					sp_err **err);
SP_PUBLIC int sp_kbs_store_put_policy(sp_kbs_store *s, const char *path,
				      const json_t *rule, sp_err **err);
/* *rule = NULL (and 0) when the resource has no rule. */
SP_PUBLIC int sp_kbs_store_get_policy(sp_kbs_store *s, const char *path,
				      json_t **rule, sp_err **err);
/* SP_ERR_NOT_FOUND when the resource had no rule. */
SP_PUBLIC int sp_kbs_store_delete_policy(sp_kbs_store *s, const char *path,
					 sp_err **err);
/* Release manifests (admin uploads): id = hex SHA-256 of the manifest. */
SP_PUBLIC int sp_kbs_store_put_manifest(sp_kbs_store *s, const char *id,
					const char *key_id,
					const uint8_t *manifest, size_t mlen,
					const uint8_t *sig, size_t slen, sp_err **err);
/* Calls fn for every stored manifest whose signature names key_id. */
typedef int (*sp_kbs_manifest_fn)(void *ctx, const uint8_t *manifest,
				  size_t mlen, const uint8_t *sig, size_t slen);
SP_PUBLIC int sp_kbs_store_each_manifest(sp_kbs_store *s, const char *key_id,
					 sp_kbs_manifest_fn fn, void *ctx,
					 sp_err **err);
/* *out = [{"path", "rule"}, ...] sorted by path. */
SP_PUBLIC int sp_kbs_store_list_policies(sp_kbs_store *s, json_t **out,
					 sp_err **err);

typedef struct sp_kbs_session {
	char id[40];     /* 32 hex digits */
	char tee[32];
	char nonce[64];  /* base64 */
	time_t expires;
	bool attested;
	json_t *claims;  /* when attested: the token's claims */
} sp_kbs_session;
SP_PUBLIC void sp_kbs_session_clear(sp_kbs_session *s);
/* A new session with a fresh random id and nonce, valid ttl seconds. */
SP_PUBLIC int sp_kbs_session_new(sp_kbs_store *s, const char *tee, time_t now,
				 int ttl, sp_kbs_session *out, sp_err **err);
/* A live session (expired ones are deleted and reported SP_ERR_NOT_FOUND). */
SP_PUBLIC int sp_kbs_session_get(sp_kbs_store *s, const char *id, time_t now,
				 sp_kbs_session *out, sp_err **err);
SP_PUBLIC int sp_kbs_session_set_attested(sp_kbs_store *s, const char *id,
					  const json_t *claims, sp_err **err);
/* Removes expired sessions; returns how many. */
SP_PUBLIC int sp_kbs_session_expire(sp_kbs_store *s, time_t now, sp_err **err);

/* ---- Client ---------------------------------------------------------------- */

/* Produces the primary evidence over REPORT_DATA, as JSON
 * {"attestation_report": base64, "cert_chain": [...]|null}. */
typedef int (*sp_kbs_evidence_fn)(void *ctx,
				  const uint8_t report_data[SP_TEE_REPORT_DATA_LEN],
				  json_t **evidence, sp_err **err);
/* That JSON from a report and its SNP certificate table (certs may be
 * NULL), for producers that reach the TEE their own way (the agent). */
SP_PUBLIC int sp_kbs_evidence_json(const uint8_t *report, size_t report_len,
				   const uint8_t *certs, size_t certs_len,
				   json_t **evidence, sp_err **err);
/* The evidence producer for a sealpod TEE (ctx = sp_tee *). */
SP_PUBLIC int sp_kbs_tee_evidence(void *ctx,
				  const uint8_t report_data[SP_TEE_REPORT_DATA_LEN],
				  json_t **evidence, sp_err **err);

typedef struct sp_kbs_client_opts {
	int version;          /* 1 */
	const char *ca_file;  /* for https URLs; NULL = system CAs */
	int timeout_s;        /* per request; 0 = 30 */
	const char *nonce_override; /* tests only: attest with this nonce */
	const char *version_override; /* tests only: auth with this version */
	bool sev_evidence;    /* send the evidence in the sev crate's object form */
} sp_kbs_client_opts;
SP_PUBLIC void sp_kbs_client_opts_init(sp_kbs_client_opts *o);

/* An attestation with a broker: its token (a JWT), the session cookie and
 * the ephemeral key the token names (resources come encrypted to it). */
typedef struct sp_kbs_attestation {
	char *token;
	long lifetime;      /* the token's exp - iat in seconds; 0 if unknown */
	char *session;
	sp_kbs_key *key;
} sp_kbs_attestation;
SP_PUBLIC void sp_kbs_attestation_clear(sp_kbs_attestation *a);
/* Auth and attest against url (as sp_kbs_client_get_resource). */
SP_PUBLIC int sp_kbs_client_attest(sp_kbs_attestation *out, const char *url,
				   const char *tee, sp_kbs_evidence_fn fn, void *ctx,
				   const sp_kbs_client_opts *opts, sp_err **err);
/* GET repo/type/tag with Authorization: Bearer token and decrypt the JWE
 * with key (the private half of the token's tee-pubkey). Errors as
 * sp_kbs_client_get_resource (an expired token: SP_ERR_APPRAISAL, 401). */
SP_PUBLIC int sp_kbs_client_fetch(uint8_t **out, size_t *len, const char *url,
				  const char *token, const sp_kbs_key *key,
				  const char *repo, const char *type,
				  const char *tag, const sp_kbs_client_opts *opts,
				  sp_err **err);

/* One admin API request (docs/kbs.md) with Authorization: Bearer
 * admin_token: *status and the answer's body (NUL-terminated). Fails only
 * when no HTTP answer came; the caller judges the status. */
SP_PUBLIC int sp_kbs_admin_request(int *status, uint8_t **body_out, size_t *body_len,
				   const char *url, const char *method, const char *path,
				   const char *admin_token, const void *body, size_t len,
				   const sp_kbs_client_opts *opts, sp_err **err);

/* The whole RCAR handshake against url ("http[s]://host[:port]"): auth as
 * tee, attest with evidence from fn over an ephemeral EC P-256 key bound
 * in REPORT_DATA, then GET repo/type/tag and decrypt the JWE. An error
 * from the broker is SP_ERR_DENIED (403), SP_ERR_APPRAISAL (401),
 * SP_ERR_NOT_FOUND (404) or SP_ERR_PROTOCOL, with the broker's status and
 * detail in the message. opts may be NULL. */
SP_PUBLIC int sp_kbs_client_get_resource(uint8_t **out, size_t *len,
					 const char *url, const char *tee,
					 sp_kbs_evidence_fn fn, void *ctx,
					 const char *repo, const char *type,
					 const char *tag,
					 const sp_kbs_client_opts *opts,
					 sp_err **err);

#endif
