/* SPDX-License-Identifier: Apache-2.0 */
/* Sealed secrets in Confidential Containers' format: a value
 *   sealed.<b64url JWS header>.<b64url JSON payload>.<b64url signature>
 * whose payload points at a key broker resource ("vault" type, provider
 * "kbs", name kbs://[host]/<repo>/<type>/<tag>) or carries an encrypted
 * data key and ciphertext ("envelope" type). The host and kubelet hold only
 * this form; the guest unseals it after attestation. Guest-safe.
 * docs/kbs.md ("Sealed secrets") has the format and the choices. */
#ifndef SEALPOD_SEALED_H
#define SEALPOD_SEALED_H

#include <jansson.h>

#include "sealpod/common.h"
#include "sealpod/err.h"
#include "sealpod/kbs.h"

#define SP_SEALED_PREFIX "sealed."
#define SP_SEALED_VERSION "0.1.0"
#define SP_SEALED_MAX (64u * 1024) /* the whole sealed value */

enum sp_sealed_type {
	SP_SEALED_VAULT = 1,
	SP_SEALED_ENVELOPE = 2,
};

/* A KBS resource URI kbs://[host]/<repo>/<type>/<tag>. */
typedef struct sp_sealed_uri {
	char host[256]; /* "" when absent (kbs:///...) */
	char repo[129], type[129], tag[129];
} sp_sealed_uri;
SP_PUBLIC int sp_sealed_uri_parse(sp_sealed_uri *out, const char *uri, sp_err **err);

typedef struct sp_sealed_secret {
	int type;            /* enum sp_sealed_type */
	char provider[64];
	/* vault */
	char *name;          /* as written */
	sp_sealed_uri resource; /* provider "kbs": name parsed */
	/* envelope */
	char *key_id;
	uint8_t *encrypted_key, *encrypted_data, *iv;
	size_t encrypted_key_len, encrypted_data_len, iv_len;
	/* the JWS protected header, when it is JSON (NULL for CoCo's dummy
	 * "fakejwsheader"), and what the signature covers */
	json_t *header;
	char *signing_input; /* "<header>.<payload>" as in the value */
	uint8_t *signature;
	size_t signature_len;
} sp_sealed_secret;

/* True if value starts with "sealed." (then it must parse, or be refused). */
SP_PUBLIC bool sp_sealed_is_sealed(const char *value, size_t len);
/* Parses and validates the whole format: four sections, the payload's
 * version 0.1.0, type vault|envelope with every required member, a kbs
 * name that is a valid resource URI. Messages never contain the value. */
SP_PUBLIC int sp_sealed_parse(sp_sealed_secret *out, const char *value, size_t len,
			      sp_err **err);
SP_PUBLIC void sp_sealed_clear(sp_sealed_secret *s);

/* Fetches one broker resource (after attestation). */
typedef int (*sp_sealed_fetch_fn)(void *ctx, const sp_sealed_uri *uri, uint8_t **out,
				  size_t *len, sp_err **err);

typedef struct sp_sealed_opts {
	int version;               /* 1 */
	/* Require an ES256 JWS signature whose header "kid" is a kbs:// URI
	 * of the verification key (a JWK, EC P-256), fetched like the secret;
	 * unsigned values (CoCo's dummy header) are then refused. */
	bool require_signature;
	/* A kbs://HOST/... name is refused unless HOST equals this (NULL:
	 * only kbs:///... names, i.e. the pod's own broker). */
	const char *allowed_host;
} sp_sealed_opts;
SP_PUBLIC void sp_sealed_opts_init(sp_sealed_opts *o);

/* Unseals: checks the signature if required, then a vault secret with
 * provider kbs is its resource's bytes. Envelope secrets need a KMS
 * provider and are refused (SP_ERR_UNSUPPORTED). Errors name the resource
 * and the reason, never the value. */
SP_PUBLIC int sp_sealed_unseal(uint8_t **out, size_t *len, const sp_sealed_secret *s,
			       sp_sealed_fetch_fn fetch, void *ctx,
			       const sp_sealed_opts *opts, sp_err **err);

/* A fetcher through the KBS client: the first fetch attests (RCAR) with
 * evidence from fn, later ones reuse the token. Clear with
 * sp_sealed_kbs_clear. */
typedef struct sp_sealed_kbs {
	const char *url, *tee;
	sp_kbs_evidence_fn evidence;
	void *evidence_ctx;
	const sp_kbs_client_opts *opts;
	sp_kbs_attestation att;
} sp_sealed_kbs;
SP_PUBLIC int sp_sealed_kbs_fetch(void *ctx, const sp_sealed_uri *uri, uint8_t **out,
				  size_t *len, sp_err **err);
SP_PUBLIC void sp_sealed_kbs_clear(sp_sealed_kbs *k);

/* Makes a vault sealed secret for a kbs:// resource URI: unsigned (CoCo's
 * dummy header and signature) when key is NULL, else ES256 with header
 * {"alg":"ES256","kid":kid}. */
SP_PUBLIC int sp_sealed_seal_vault(char **out, const char *resource_uri,
				   const sp_kbs_key *key, const char *kid, sp_err **err);

#endif
