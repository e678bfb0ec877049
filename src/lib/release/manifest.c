/* SPDX-License-Identifier: Apache-2.0 */
/* Signed release manifests: Ed25519 (RFC 8032, pure) over the exact bytes
 * of manifest.json, in a detached JSON signature file. Signing the bytes
 * as written (not a canonical form) means nothing has to be normalised
 * before verifying: any changed byte fails. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"
#include "sealpod/release.h"

struct sp_release_key {
	EVP_PKEY *pkey;
	bool private;
	char id[80];
};

void sp_release_key_free(sp_release_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *sp_release_key_id(const sp_release_key *k)
{
	return k->id;
}

/* An encrypted PEM key must fail, not make OpenSSL prompt on a terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int sp_release_key_load(sp_release_key **out, const uint8_t *pem, size_t len, sp_err **err)
{
	*out = NULL;
	if (len > 64 * 1024)
		return sp_error(err, SP_ERR_PARSE, "release key: more than 64 KiB of PEM");
	bool priv = memmem(pem, len, "PRIVATE KEY-----", 16) != NULL;
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (!b)
		sp_oom();
	EVP_PKEY *p = priv ? PEM_read_bio_PrivateKey(b, NULL, no_password, NULL)
			   : PEM_read_bio_PUBKEY(b, NULL, no_password, NULL);
	BIO_free(b);
	ERR_clear_error();
	if (!p)
		return sp_error(err, SP_ERR_PARSE,
				"release key: not a PEM public key (or an unencrypted private key)");
	if (!EVP_PKEY_is_a(p, "ED25519")) {
		EVP_PKEY_free(p);
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"release key: only Ed25519 keys are used for release manifests "
				"(openssl genpkey -algorithm ed25519)");
	}
	unsigned char *der = NULL;
	int dl = i2d_PUBKEY(p, &der);
	if (dl <= 0)
		sp_oom();
	uint8_t h[32];
	sp_sha256(h, der, (size_t)dl);
	OPENSSL_free(der);
	sp_release_key *k = sp_xzalloc(sizeof(*k));
	k->pkey = p;
	k->private = priv;
	memcpy(k->id, "sha256:", 7);
	sp_hex_encode(k->id + 7, h, 32);
	*out = k;
	return 0;
}

int sp_release_key_load_file(sp_release_key **out, const char *path, sp_err **err)
{
	_cleanup_free_ uint8_t *d = NULL;
	size_t n = 0;
	*out = NULL;
	if (sp_read_file(&d, &n, path, 64 * 1024, err) < 0)
		return sp_error_wrap(err, "release key");
	if (sp_release_key_load(out, d, n, err) < 0)
		return sp_error_wrap(err, "%s", path);
	return 0;
}

int sp_release_sig_parse(sp_release_sig *out, const void *data, size_t len, sp_err **err)
{
	_cleanup_json_ json_t *j = NULL;
	const char *fmt = NULL, *alg = NULL, *kid = NULL, *mh = NULL, *sig = NULL;
	int r;
	memset(out, 0, sizeof(*out));
	if (len > 64 * 1024)
		return sp_error(err, SP_ERR_PARSE, "signature file: larger than 64 KiB");
	if ((r = sp_json_parse(&j, data, len, "signature file", err)) < 0)
		return r;
	if (!json_is_object(j))
		return sp_error(err, SP_ERR_PARSE, "signature file: not a JSON object");
	if ((r = sp_json_get_string(j, "format", true, &fmt, "signature file", err)) < 0 ||
	    (r = sp_json_get_string(j, "algorithm", true, &alg, "signature file", err)) < 0 ||
	    (r = sp_json_get_string(j, "key_id", true, &kid, "signature file", err)) < 0 ||
	    (r = sp_json_get_string(j, "manifest_sha256", true, &mh, "signature file", err)) < 0 ||
	    (r = sp_json_get_string(j, "signature", true, &sig, "signature file", err)) < 0)
		return r;
	if (strcmp(fmt, SP_RELEASE_SIG_FORMAT))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"signature file: format `%.64s` is not " SP_RELEASE_SIG_FORMAT, fmt);
	if (strcmp(alg, "Ed25519"))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"signature file: algorithm `%.32s` is not Ed25519", alg);
	if (strncmp(kid, "sha256:", 7) || strlen(kid) != 7 + 64)
		return sp_error(err, SP_ERR_PARSE, "signature file: key_id is not sha256:<64 hex>");
	for (size_t i = 7; i < strlen(kid); i++)
		if (sp_hex_digit(kid[i]) < 0)
			return sp_error(err, SP_ERR_PARSE,
					"signature file: key_id is not sha256:<64 hex>");
	if (sp_hex_decode(out->manifest_sha256, 32, mh, err) < 0)
		return sp_error_wrap(err, "signature file: manifest_sha256");
	_cleanup_free_ uint8_t *sb = NULL;
	size_t sl = 0;
	if (sp_base64_decode(&sb, &sl, sig, strlen(sig), SP_B64_STD, err) < 0)
		return sp_error_wrap(err, "signature file: signature");
	if (sl != 64)
		return sp_error(err, SP_ERR_PARSE,
				"signature file: signature has %zu bytes, an Ed25519 one 64", sl);
	memcpy(out->signature, sb, 64);
	snprintf(out->key_id, sizeof(out->key_id), "%s", kid);
	return 0;
}

int sp_release_sign(char **out, const sp_release_key *key, const uint8_t *manifest,
		    size_t len, sp_err **err)
{
	*out = NULL;
	if (!key->private)
		return sp_error(err, SP_ERR_INVALID,
				"signing a release manifest needs the private key (PKCS#8 PEM)");
	uint8_t sig[64];
	size_t sl = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md)
		sp_oom();
	int ok = EVP_DigestSignInit(md, NULL, NULL, NULL, key->pkey) == 1 &&
		 EVP_DigestSign(md, sig, &sl, manifest, len) == 1 && sl == 64;
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	if (!ok)
		return sp_error(err, SP_ERR_SYSTEM, "Ed25519 signing failed");
	uint8_t h[32];
	char hex[65];
	sp_sha256(h, manifest, len);
	sp_hex_encode(hex, h, 32);
	_cleanup_free_ char *b64 = sp_base64_encode(sig, 64, SP_B64_STD);
	_cleanup_json_ json_t *j =
		json_pack("{s:s,s:s,s:s,s:s,s:s}", "format", SP_RELEASE_SIG_FORMAT, "algorithm",
			  "Ed25519", "key_id", key->id, "manifest_sha256", hex, "signature", b64);
	_cleanup_free_ char *txt = sp_json_dump_pretty(j);
	*out = sp_xasprintf("%s\n", txt);
	return 0;
}

int sp_release_sign_file(const char *manifest_path, const char *key_path, sp_err **err)
{
	_cleanup_release_key_ sp_release_key *key = NULL;
	_cleanup_free_ uint8_t *m = NULL;
	_cleanup_free_ char *sig = NULL, *sig_path = NULL;
	size_t n = 0;
	int r;
	if ((r = sp_release_key_load_file(&key, key_path, err)) < 0)
		return r;
	if ((r = sp_read_file(&m, &n, manifest_path, SP_RELEASE_MAX_MANIFEST, err)) < 0)
		return sp_error_wrap(err, "release manifest");
	if ((r = sp_release_sign(&sig, key, m, n, err)) < 0)
		return r;
	sig_path = sp_xasprintf("%s" SP_RELEASE_SIG_SUFFIX, manifest_path);
	if ((r = sp_write_file_atomic(sig_path, sig, strlen(sig), 0644, err)) < 0)
		return sp_error_wrap(err, "manifest signature");
	return 0;
}

int sp_release_verify(json_t **out, const sp_release_key *key, const uint8_t *manifest,
		      size_t len, const uint8_t *sig, size_t sig_len, sp_err **err)
{
	sp_release_sig s;
	int r;
	if (out)
		*out = NULL;
	if ((r = sp_release_sig_parse(&s, sig, sig_len, err)) < 0)
		return r;
	if (strcmp(s.key_id, key->id))
		return sp_error(err, SP_ERR_SIGNATURE,
				"release manifest: signed by another key (%s), not the trusted "
				"%s", s.key_id, key->id);
	uint8_t h[32];
	sp_sha256(h, manifest, len);
	if (!sp_memeq_ct(h, s.manifest_sha256, 32))
		return sp_error(err, SP_ERR_SIGNATURE,
				"release manifest: its SHA-256 is not the one signed (the "
				"manifest was changed after signing)");
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md)
		sp_oom();
	int ok = EVP_DigestVerifyInit(md, NULL, NULL, NULL, key->pkey) == 1 &&
		 EVP_DigestVerify(md, s.signature, 64, manifest, len) == 1;
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	if (!ok)
		return sp_error(err, SP_ERR_SIGNATURE,
				"release manifest: the Ed25519 signature does not verify");
	json_t *j = NULL;
	if ((r = sp_json_parse(&j, manifest, len, "release manifest", err)) < 0)
		return r;
	if (!json_is_object(j)) {
		json_decref(j);
		return sp_error(err, SP_ERR_PARSE, "release manifest: not a JSON object");
	}
	if (out)
		*out = j;
	else
		json_decref(j);
	return 0;
}

int sp_release_verify_files(json_t **out, const sp_release_key *key, const char *manifest_path,
			    const char *sig_path, sp_err **err)
{
	_cleanup_free_ uint8_t *m = NULL, *s = NULL;
	_cleanup_free_ char *def = NULL;
	size_t mn = 0, sn = 0;
	if (!sig_path)
		sig_path = def = sp_xasprintf("%s" SP_RELEASE_SIG_SUFFIX, manifest_path);
	if (sp_read_file(&m, &mn, manifest_path, SP_RELEASE_MAX_MANIFEST, err) < 0)
		return sp_error_wrap(err, "release manifest");
	if (sp_read_file(&s, &sn, sig_path, 64 * 1024, err) < 0)
		return sp_error_wrap(err, "release manifest signature");
	return sp_release_verify(out, key, m, mn, s, sn, err);
}

int sp_release_measurements(uint8_t (**out)[48], size_t *n, const json_t *manifest, bool sim,
			    sp_err **err)
{
	const char *key = sim ? "sim_launch_measurement" : "launch_measurement";
	*out = NULL;
	*n = 0;
	json_t *snp = json_object_get(manifest, "snp");
	if (snp && !json_is_object(snp))
		return sp_error(err, SP_ERR_PARSE, "release manifest: snp is not an object");
	json_t *v = json_object_get(snp, key);
	if (!v)
		return 0;
	if (!json_is_string(v) || json_string_length(v) != 96)
		return sp_error(err, SP_ERR_PARSE, "release manifest: snp.%s is not 96 hex digits",
				key);
	uint8_t(*m)[48] = sp_xcalloc(1, 48);
	if (sp_hex_decode(m[0], 48, json_string_value(v), err) < 0) {
		free(m);
		return sp_error_wrap(err, "release manifest: snp.%s", key);
	}
	*out = m;
	*n = 1;
	return 0;
}
