/* SPDX-License-Identifier: Apache-2.0 */
/* Signed release manifests: the detached signature file's parser, the
 * whole check against a fixed key, and the measurement extraction from a
 * manifest. The first byte picks: 0 signature file, 1 a manifest verified
 * against a fixed signature, 2 the measurements of a manifest. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sealpod/json.h"
#include "sealpod/release.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static sp_release_key *key;
	static char *sig;
	if (!key) {
		EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		BIO *b = BIO_new(BIO_s_mem());
		char *d;
		if (!p || !b || !PEM_write_bio_PrivateKey(b, p, NULL, NULL, 0, NULL, NULL))
			abort();
		long n = BIO_get_mem_data(b, &d);
		if (sp_release_key_load(&key, (uint8_t *)d, (size_t)n, NULL) < 0 ||
		    sp_release_sign(&sig, key, (const uint8_t *)"{}", 2, NULL) < 0)
			abort();
		BIO_free(b);
		EVP_PKEY_free(p);
	}
	if (size < 1)
		return 0;
	uint8_t sel = data[0] % 3;
	data++;
	size--;
	sp_err *err = NULL;
	switch (sel) {
	case 0: {
		sp_release_sig s;
		sp_release_sig_parse(&s, data, size, &err);
		json_t *j = NULL;
		/* As a signature over "{}" by the fixed key. */
		if (sp_release_verify(&j, key, (const uint8_t *)"{}", 2, data, size, NULL) == 0)
			json_decref(j);
		break;
	}
	case 1: {
		json_t *j = NULL;
		/* Only "{}" verifies; anything else must be refused. */
		int r = sp_release_verify(&j, key, data, size, (uint8_t *)sig, strlen(sig), &err);
		if (r == 0 && (size != 2 || memcmp(data, "{}", 2)))
			abort();
		json_decref(j);
		break;
	}
	case 2: {
		json_t *j = NULL;
		if (sp_json_parse(&j, data, size, "manifest", &err) == 0) {
			uint8_t(*m)[48] = NULL;
			size_t n = 0;
			for (int sim = 0; sim < 2; sim++) {
				if (sp_release_measurements(&m, &n, j, sim, NULL) == 0)
					free(m);
				m = NULL;
			}
			json_decref(j);
		}
		break;
	}
	}
	sp_err_free(err);
	return 0;
}
