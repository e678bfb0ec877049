/* SPDX-License-Identifier: Apache-2.0 */
/* Signed release manifests: the guest image's manifest.json (hashes, the
 * file list, the expected SNP launch measurements; docs/guest-image.md)
 * signed with Ed25519 into a detached `manifest.json.sig`, so a verifier
 * or the key broker can accept any measurement a release signed by a key
 * it trusts lists, instead of a fixed list of raw measurements.
 * docs/guest-image.md ("Signed release manifests") has the format.
 * Guest-safe (OpenSSL and jansson only). */
#ifndef SEALPOD_RELEASE_H
#define SEALPOD_RELEASE_H

#include <jansson.h>

#include "sealpod/common.h"
#include "sealpod/err.h"

#define SP_RELEASE_SIG_FORMAT "sealpod-manifest-signature/1"
#define SP_RELEASE_SIG_SUFFIX ".sig"
#define SP_RELEASE_MAX_MANIFEST (16u << 20)

/* An Ed25519 key: public only, or with its private half. */
typedef struct sp_release_key sp_release_key;
/* From PEM: a public key (SubjectPublicKeyInfo) or a private key (PKCS#8;
 * its public half is used for verifying). Only Ed25519. */
SP_PUBLIC int sp_release_key_load(sp_release_key **out, const uint8_t *pem,
				  size_t len, sp_err **err);
SP_PUBLIC int sp_release_key_load_file(sp_release_key **out, const char *path,
				       sp_err **err);
/* "sha256:<hex of the public key's SubjectPublicKeyInfo DER>". */
SP_PUBLIC const char *sp_release_key_id(const sp_release_key *k);
SP_PUBLIC void sp_release_key_free(sp_release_key *k);
static inline void sp_release_key_freep(sp_release_key **k)
{
	if (*k)
		sp_release_key_free(*k);
}
#define _cleanup_release_key_ __attribute__((cleanup(sp_release_key_freep)))

/* The signature file's members (parsed, not yet checked). */
typedef struct sp_release_sig {
	char key_id[80];
	uint8_t manifest_sha256[32];
	uint8_t signature[64];
} sp_release_sig;
SP_PUBLIC int sp_release_sig_parse(sp_release_sig *out, const void *data,
				   size_t len, sp_err **err);

/* Signs the manifest's exact bytes with a private key: *out is the
 * signature file's text (JSON, ending in a newline). */
SP_PUBLIC int sp_release_sign(char **out, const sp_release_key *key,
			      const uint8_t *manifest, size_t len,
			      sp_err **err);
/* Signs the file at manifest_path into manifest_path + ".sig". */
SP_PUBLIC int sp_release_sign_file(const char *manifest_path,
				   const char *key_path, sp_err **err);
/* Checks that sig (a signature file) is key's signature over manifest and
 * parses the manifest (*out, may be NULL). SP_ERR_SIGNATURE for another
 * key, a changed manifest or a signature that does not verify. */
SP_PUBLIC int sp_release_verify(json_t **out, const sp_release_key *key,
				const uint8_t *manifest, size_t len,
				const uint8_t *sig, size_t sig_len, sp_err **err);
/* Reads manifest_path and sig_path (NULL: manifest_path + ".sig") and
 * verifies them as sp_release_verify. */
SP_PUBLIC int sp_release_verify_files(json_t **out, const sp_release_key *key,
				      const char *manifest_path,
				      const char *sig_path, sp_err **err);
/* The launch measurements (48 bytes each) a manifest lists for hardware
 * (snp.launch_measurement) or for the sim PSP (snp.sim_launch_measurement).
 * *n = 0 (and success) when it lists none; malformed values fail. */
SP_PUBLIC int sp_release_measurements(uint8_t (**out)[48], size_t *n,
				      const json_t *manifest, bool sim,
				      sp_err **err);

#endif
