/* SPDX-License-Identifier: Apache-2.0 */
/* JOSE for the key broker: keys and JWKs (EC P-256, RSA), JWE with
 * A256GCM content encryption and ECDH-ES+A256KW or RSA-OAEP-256 key
 * wrapping, and the ES256 JWT of the attestation token. */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "kbs-internal.h"
#include "sealpod/bytes.h"
#include "sealpod/hash.h"
#include "sealpod/codec.h"
#include "sealpod/json.h"

struct sp_kbs_key {
	EVP_PKEY *pkey;
	bool ec; /* else RSA */
};

#define EC_COORD 32
#define CEK_LEN 32
#define IV_LEN 12
#define TAG_LEN 16

static sp_kbs_key *key_wrap(EVP_PKEY *p)
{
	sp_kbs_key *k = sp_xzalloc(sizeof(*k));
	k->pkey = p;
	k->ec = EVP_PKEY_is_a(p, "EC");
	return k;
}

void sp_kbs_key_free(sp_kbs_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

int sp_kbs_key_generate_ec(sp_kbs_key **out, sp_err **err)
{
	EVP_PKEY *p = EVP_EC_gen("P-256");
	if (!p)
		return sp_error(err, SP_ERR_SYSTEM, "cannot generate an EC P-256 key");
	*out = key_wrap(p);
	return 0;
}

int sp_kbs_key_generate_rsa(sp_kbs_key **out, unsigned bits, sp_err **err)
{
	EVP_PKEY *p = EVP_RSA_gen(bits);
	if (!p)
		return sp_error(err, SP_ERR_SYSTEM, "cannot generate an RSA-%u key", bits);
	*out = key_wrap(p);
	return 0;
}

int sp_kbs_key_from_pem(sp_kbs_key **out, const uint8_t *pem, size_t len,
			sp_err **err)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (!b)
		sp_oom();
	EVP_PKEY *p = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!p)
		return sp_error(err, SP_ERR_PARSE, "not a PEM private key");
	if (EVP_PKEY_is_a(p, "EC")) {
		char grp[32] = "";
		size_t gl = 0;
		if (!EVP_PKEY_get_utf8_string_param(p, OSSL_PKEY_PARAM_GROUP_NAME, grp,
						    sizeof(grp), &gl) ||
		    (strcmp(grp, "prime256v1") && strcmp(grp, "P-256"))) {
			EVP_PKEY_free(p);
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"EC key on curve `%s`: only P-256 is supported", grp);
		}
	} else if (!EVP_PKEY_is_a(p, "RSA")) {
		EVP_PKEY_free(p);
		return sp_error(err, SP_ERR_UNSUPPORTED, "key type: only EC P-256 and RSA");
	}
	*out = key_wrap(p);
	return 0;
}

char *sp_kbs_key_to_pem(const sp_kbs_key *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (!b || !PEM_write_bio_PrivateKey(b, k->pkey, NULL, NULL, 0, NULL, NULL))
		sp_oom();
	char *d;
	long n = BIO_get_mem_data(b, &d);
	char *s = sp_xstrndup(d, (size_t)n);
	BIO_free(b);
	return s;
}

static char *bn_b64(const EVP_PKEY *p, const char *name, int pad)
{
	BIGNUM *bn = NULL;
	if (!EVP_PKEY_get_bn_param(p, name, &bn))
		return NULL;
	int n = pad ? pad : BN_num_bytes(bn);
	uint8_t *buf = sp_xmalloc((size_t)(n ? n : 1));
	BN_bn2binpad(bn, buf, n);
	BN_free(bn);
	char *s = sp_base64_encode(buf, (size_t)n, SP_B64_URL);
	free(buf);
	return s;
}

json_t *sp_kbs_key_public_jwk(const sp_kbs_key *k)
{
	if (k->ec) {
		_cleanup_free_ char *x = bn_b64(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, EC_COORD);
		_cleanup_free_ char *y = bn_b64(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, EC_COORD);
		if (!x || !y)
			sp_oom();
		return json_pack("{s:s,s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256",
				 "alg", "ECDH-ES+A256KW", "x", x, "y", y);
	}
	_cleanup_free_ char *n = bn_b64(k->pkey, OSSL_PKEY_PARAM_RSA_N, 0);
	_cleanup_free_ char *e = bn_b64(k->pkey, OSSL_PKEY_PARAM_RSA_E, 0);
	if (!n || !e)
		sp_oom();
	return json_pack("{s:s,s:s,s:s,s:s}", "kty", "RSA", "alg", "RSA-OAEP-256", "n", n,
			 "e", e);
}

/* A base64url member decoded to exactly want bytes (0 = any, 1..max). */
static int b64_member(uint8_t **out, size_t *len, const json_t *o, const char *key,
		      size_t want, size_t max, const char *what, sp_err **err)
{
	const char *s = NULL;
	int r = sp_json_get_string(o, key, true, &s, what, err);
	if (r < 0)
		return r;
	if ((r = sp_base64_decode(out, len, s, strlen(s), SP_B64_URL, err)) < 0)
		return sp_error_wrap(err, "%s.%s", what, key);
	if ((want && *len != want) || (!want && (*len == 0 || *len > max))) {
		free(*out);
		*out = NULL;
		return sp_error(err, SP_ERR_PARSE, "%s.%s: %zu bytes, want %zu", what, key, *len,
				want ? want : max);
	}
	return 0;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *p = NULL;
	if (params && c && EVP_PKEY_fromdata_init(c) == 1)
		EVP_PKEY_fromdata(c, &p, EVP_PKEY_PUBLIC_KEY, params);
	EVP_PKEY_CTX_free(c);
	OSSL_PARAM_free(params);
	return p;
}

int sp_kbs_jwk_parse(sp_kbs_key **out, const json_t *jwk, sp_err **err)
{
	const char *kty = NULL, *alg = NULL, *crv = NULL;
	int r;
	if (!json_is_object(jwk))
		return sp_error(err, SP_ERR_PARSE, "tee-pubkey: not a JSON object (a JWK)");
	if ((r = sp_json_get_string(jwk, "kty", true, &kty, "tee-pubkey", err)) < 0 ||
	    (r = sp_json_get_string(jwk, "alg", false, &alg, "tee-pubkey", err)) < 0)
		return r;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	if (!bld)
		sp_oom();
	EVP_PKEY *p = NULL;
	if (!strcmp(kty, "EC")) {
		if ((r = sp_json_get_string(jwk, "crv", true, &crv, "tee-pubkey", err)) < 0)
			goto out;
		if (strcmp(crv, "P-256")) {
			r = sp_error(err, SP_ERR_UNSUPPORTED, "tee-pubkey: curve `%s`: only P-256",
				     crv);
			goto out;
		}
		if (alg && strcmp(alg, "ECDH-ES+A256KW")) {
			r = sp_error(err, SP_ERR_UNSUPPORTED,
				     "tee-pubkey: alg `%s` for EC: only ECDH-ES+A256KW", alg);
			goto out;
		}
		_cleanup_free_ uint8_t *x = NULL, *y = NULL;
		size_t xl, yl;
		if ((r = b64_member(&x, &xl, jwk, "x", EC_COORD, 0, "tee-pubkey", err)) < 0 ||
		    (r = b64_member(&y, &yl, jwk, "y", EC_COORD, 0, "tee-pubkey", err)) < 0)
			goto out;
		uint8_t pt[1 + 2 * EC_COORD];
		pt[0] = 4;
		memcpy(pt + 1, x, EC_COORD);
		memcpy(pt + 1 + EC_COORD, y, EC_COORD);
		OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
		OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt));
		p = pkey_fromdata("EC", bld);
		/* fromdata does not check that the point is on the curve. */
		if (p) {
			EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(p, NULL);
			bool ok = c && EVP_PKEY_public_check(c) == 1;
			EVP_PKEY_CTX_free(c);
			if (!ok) {
				EVP_PKEY_free(p);
				p = NULL;
			}
		}
		if (!p) {
			r = sp_error(err, SP_ERR_PARSE, "tee-pubkey: x/y is not a P-256 point");
			goto out;
		}
	} else if (!strcmp(kty, "RSA")) {
		if (alg && strcmp(alg, "RSA-OAEP-256")) {
			r = sp_error(err, SP_ERR_UNSUPPORTED,
				     "tee-pubkey: alg `%s` for RSA: only RSA-OAEP-256", alg);
			goto out;
		}
		_cleanup_free_ uint8_t *n = NULL, *e = NULL;
		size_t nl, el;
		if ((r = b64_member(&n, &nl, jwk, "n", 0, 1024, "tee-pubkey", err)) < 0 ||
		    (r = b64_member(&e, &el, jwk, "e", 0, 8, "tee-pubkey", err)) < 0)
			goto out;
		if (nl < 256) {
			r = sp_error(err, SP_ERR_UNSUPPORTED,
				     "tee-pubkey: RSA modulus of %zu bits: at least 2048", nl * 8);
			goto out;
		}
		BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn);
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be);
		p = pkey_fromdata("RSA", bld);
		BN_free(bn);
		BN_free(be);
		if (!p) {
			r = sp_error(err, SP_ERR_PARSE, "tee-pubkey: unusable RSA key");
			goto out;
		}
	} else {
		r = sp_error(err, SP_ERR_UNSUPPORTED, "tee-pubkey: kty `%s`: only EC and RSA",
			     kty);
		goto out;
	}
	*out = key_wrap(p);
	r = 0;
out:
	OSSL_PARAM_BLD_free(bld);
	return r;
}

/* ---- JWE ------------------------------------------------------------- */

/* RFC 7518 4.6.2: Concat KDF with SHA-256, one round (256-bit output);
 * AlgorithmID = alg, PartyUInfo/PartyVInfo empty. */
static void concat_kdf(uint8_t out[32], const uint8_t *z, size_t zl, const char *alg)
{
	sp_buf b = SP_BUF_INIT;
	size_t al = strlen(alg);
	sp_buf_put_u32be(&b, 1);
	sp_buf_put(&b, z, zl);
	sp_buf_put_u32be(&b, (uint32_t)al);
	sp_buf_put(&b, alg, al);
	sp_buf_put_u32be(&b, 0); /* apu */
	sp_buf_put_u32be(&b, 0); /* apv */
	sp_buf_put_u32be(&b, 256);
	sp_sha256(out, b.data, b.len);
	OPENSSL_cleanse(b.data, b.len);
	sp_buf_free(&b);
}

static int ecdh(uint8_t **z, size_t *zl, EVP_PKEY *priv, EVP_PKEY *peer)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(priv, NULL);
	int ok = c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
		 EVP_PKEY_derive(c, NULL, zl) == 1;
	if (ok) {
		*z = sp_xmalloc(*zl);
		ok = EVP_PKEY_derive(c, *z, zl) == 1;
		if (!ok) {
			free(*z);
			*z = NULL;
		}
	}
	EVP_PKEY_CTX_free(c);
	return ok ? 0 : -1;
}

/* RFC 3394 AES key wrap with a 256-bit KEK. */
static int aes_kw(uint8_t *out, int *outl, const uint8_t kek[32], const uint8_t *in,
		  size_t inl, bool enc)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		sp_oom();
	EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	int n = 0, f = 0;
	int ok = EVP_CipherInit_ex(c, EVP_aes_256_wrap(), NULL, kek, NULL, enc) == 1 &&
		 EVP_CipherUpdate(c, out, &n, in, (int)inl) == 1 &&
		 EVP_CipherFinal_ex(c, out + n, &f) == 1;
	EVP_CIPHER_CTX_free(c);
	*outl = n + f;
	return ok ? 0 : -1;
}

static int rsa_oaep(uint8_t **out, size_t *outl, EVP_PKEY *k, const uint8_t *in,
		    size_t inl, bool enc)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
	int ok = c && (enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) == 1 &&
		 EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) == 1 &&
		 EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) == 1 &&
		 EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) == 1;
	if (ok) {
		ok = (enc ? EVP_PKEY_encrypt(c, NULL, outl, in, inl)
			  : EVP_PKEY_decrypt(c, NULL, outl, in, inl)) == 1;
		if (ok) {
			*out = sp_xmalloc(*outl);
			ok = (enc ? EVP_PKEY_encrypt(c, *out, outl, in, inl)
				  : EVP_PKEY_decrypt(c, *out, outl, in, inl)) == 1;
			if (!ok) {
				free(*out);
				*out = NULL;
			}
		}
	}
	EVP_PKEY_CTX_free(c);
	return ok ? 0 : -1;
}

static int gcm(uint8_t *out, const uint8_t key[CEK_LEN], const uint8_t iv[IV_LEN],
	       const char *aad, const uint8_t *in, size_t inl, uint8_t tag[TAG_LEN], bool enc)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (!c)
		sp_oom();
	int n = 0, f = 0;
	int ok = EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
		 EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) == 1 &&
		 EVP_CipherInit_ex(c, NULL, NULL, key, iv, enc) == 1 &&
		 EVP_CipherUpdate(c, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) == 1;
	/* Large inputs go in pieces, since EVP takes int lengths. */
	size_t done = 0;
	while (ok && done < inl) {
		int chunk = inl - done > (1u << 30) ? (1 << 30) : (int)(inl - done);
		ok = EVP_CipherUpdate(c, out + done, &n, in + done, chunk) == 1;
		done += (size_t)n;
	}
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1;
	if (ok)
		ok = EVP_CipherFinal_ex(c, out + done, &f) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

int sp_kbs_jwe_encrypt(json_t **out, const sp_kbs_key *rcpt, const uint8_t *data,
		       size_t len, sp_err **err)
{
	uint8_t cek[CEK_LEN], iv[IV_LEN], tag[TAG_LEN];
	if (RAND_bytes(cek, sizeof(cek)) != 1 || RAND_bytes(iv, sizeof(iv)) != 1)
		return sp_error(err, SP_ERR_SYSTEM, "no randomness for the JWE");
	_cleanup_json_ json_t *hdr = NULL;
	_cleanup_free_ uint8_t *ek = NULL;
	size_t ekl = 0;
	int r = 0;
	if (rcpt->ec) {
		_cleanup_kbs_key_ sp_kbs_key *eph = NULL;
		if ((r = sp_kbs_key_generate_ec(&eph, err)) < 0)
			return r;
		_cleanup_free_ uint8_t *z = NULL;
		size_t zl = 0;
		if (ecdh(&z, &zl, eph->pkey, rcpt->pkey) < 0)
			return sp_error(err, SP_ERR_SYSTEM, "ECDH with the tee-pubkey failed");
		uint8_t kek[32];
		concat_kdf(kek, z, zl, "ECDH-ES+A256KW");
		OPENSSL_cleanse(z, zl);
		ek = sp_xmalloc(CEK_LEN + 8);
		int n = 0;
		r = aes_kw(ek, &n, kek, cek, CEK_LEN, true);
		OPENSSL_cleanse(kek, sizeof(kek));
		if (r < 0)
			return sp_error(err, SP_ERR_SYSTEM, "AES key wrap failed");
		ekl = (size_t)n;
		json_t *epk = sp_kbs_key_public_jwk(eph);
		json_object_del(epk, "alg");
		hdr = json_pack("{s:s,s:s,s:o}", "alg", "ECDH-ES+A256KW", "enc", "A256GCM", "epk",
				epk);
	} else {
		if (rsa_oaep(&ek, &ekl, rcpt->pkey, cek, CEK_LEN, true) < 0)
			return sp_error(err, SP_ERR_SYSTEM, "RSA-OAEP-256 wrap failed");
		hdr = json_pack("{s:s,s:s}", "alg", "RSA-OAEP-256", "enc", "A256GCM");
	}
	if (!hdr)
		sp_oom();
	_cleanup_free_ char *hj = sp_json_dump_canonical(hdr);
	_cleanup_free_ char *prot = sp_base64_encode(hj, strlen(hj), SP_B64_URL);
	_cleanup_free_ uint8_t *ct = sp_xmalloc(len + 1);
	r = gcm(ct, cek, iv, prot, data, len, tag, true);
	OPENSSL_cleanse(cek, sizeof(cek));
	if (r < 0)
		return sp_error(err, SP_ERR_SYSTEM, "A256GCM encryption failed");
	_cleanup_free_ char *s_ek = sp_base64_encode(ek, ekl, SP_B64_URL);
	_cleanup_free_ char *s_iv = sp_base64_encode(iv, IV_LEN, SP_B64_URL);
	_cleanup_free_ char *s_ct = sp_base64_encode(ct, len, SP_B64_URL);
	_cleanup_free_ char *s_tag = sp_base64_encode(tag, TAG_LEN, SP_B64_URL);
	*out = json_pack("{s:s,s:s,s:s,s:s,s:s}", "protected", prot, "encrypted_key", s_ek,
			 "iv", s_iv, "ciphertext", s_ct, "tag", s_tag);
	if (!*out)
		sp_oom();
	return 0;
}

int sp_kbs_jwe_decrypt(uint8_t **out, size_t *len, const sp_kbs_key *key,
		       const json_t *jwe, sp_err **err)
{
	const char *prot = NULL, *alg = NULL, *enc = NULL;
	int r;
	if (!json_is_object(jwe))
		return sp_error(err, SP_ERR_PARSE, "JWE: not a JSON object");
	if ((r = sp_json_get_string(jwe, "protected", true, &prot, "JWE", err)) < 0)
		return r;
	_cleanup_free_ uint8_t *hb = NULL, *ek = NULL, *iv = NULL, *ct = NULL, *tag = NULL;
	size_t hl, ekl, ivl, ctl, tagl;
	if ((r = sp_base64_decode(&hb, &hl, prot, strlen(prot), SP_B64_URL, err)) < 0)
		return sp_error_wrap(err, "JWE protected header");
	_cleanup_json_ json_t *hdr = NULL;
	if ((r = sp_json_parse(&hdr, hb, hl, "JWE protected header", err)) < 0)
		return r;
	if ((r = sp_json_get_string(hdr, "alg", true, &alg, "JWE header", err)) < 0 ||
	    (r = sp_json_get_string(hdr, "enc", true, &enc, "JWE header", err)) < 0)
		return r;
	if (strcmp(enc, "A256GCM"))
		return sp_error(err, SP_ERR_UNSUPPORTED, "JWE enc `%s`: only A256GCM", enc);
	if ((r = b64_member(&ek, &ekl, jwe, "encrypted_key", 0, 1024, "JWE", err)) < 0 ||
	    (r = b64_member(&iv, &ivl, jwe, "iv", IV_LEN, 0, "JWE", err)) < 0 ||
	    (r = b64_member(&tag, &tagl, jwe, "tag", TAG_LEN, 0, "JWE", err)) < 0)
		return r;
	const char *cts = NULL;
	if ((r = sp_json_get_string(jwe, "ciphertext", true, &cts, "JWE", err)) < 0)
		return r;
	if ((r = sp_base64_decode(&ct, &ctl, cts, strlen(cts), SP_B64_URL, err)) < 0)
		return sp_error_wrap(err, "JWE ciphertext");
	uint8_t cek[CEK_LEN];
	if (!strcmp(alg, "ECDH-ES+A256KW")) {
		if (!key->ec)
			return sp_error(err, SP_ERR_PARSE, "JWE alg %s for an RSA key", alg);
		json_t *epk = json_object_get(hdr, "epk");
		_cleanup_kbs_key_ sp_kbs_key *peer = NULL;
		if ((r = sp_kbs_jwk_parse(&peer, epk, err)) < 0)
			return sp_error_wrap(err, "JWE epk");
		_cleanup_free_ uint8_t *z = NULL;
		size_t zl = 0;
		if (ecdh(&z, &zl, key->pkey, peer->pkey) < 0)
			return sp_error(err, SP_ERR_SIGNATURE, "JWE: ECDH with epk failed");
		uint8_t kek[32];
		concat_kdf(kek, z, zl, alg);
		OPENSSL_cleanse(z, zl);
		uint8_t buf[CEK_LEN + 16];
		int n = 0;
		if (ekl != CEK_LEN + 8) {
			OPENSSL_cleanse(kek, sizeof(kek));
			return sp_error(err, SP_ERR_PARSE, "JWE encrypted_key: %zu bytes, want 40",
					ekl);
		}
		r = aes_kw(buf, &n, kek, ek, ekl, false);
		OPENSSL_cleanse(kek, sizeof(kek));
		if (r < 0 || n != CEK_LEN)
			return sp_error(err, SP_ERR_SIGNATURE,
					"JWE: the key does not unwrap (wrong key or tampered)");
		memcpy(cek, buf, CEK_LEN);
		OPENSSL_cleanse(buf, sizeof(buf));
	} else if (!strcmp(alg, "RSA-OAEP-256")) {
		if (key->ec)
			return sp_error(err, SP_ERR_PARSE, "JWE alg %s for an EC key", alg);
		_cleanup_free_ uint8_t *k = NULL;
		size_t kl = 0;
		if (rsa_oaep(&k, &kl, key->pkey, ek, ekl, false) < 0 || kl != CEK_LEN) {
			if (k)
				OPENSSL_cleanse(k, kl);
			return sp_error(err, SP_ERR_SIGNATURE,
					"JWE: the key does not unwrap (wrong key or tampered)");
		}
		memcpy(cek, k, CEK_LEN);
		OPENSSL_cleanse(k, kl);
	} else {
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"JWE alg `%s`: only ECDH-ES+A256KW and RSA-OAEP-256", alg);
	}
	uint8_t *pt = sp_xmalloc(ctl + 1);
	r = gcm(pt, cek, iv, prot, ct, ctl, tag, false);
	OPENSSL_cleanse(cek, sizeof(cek));
	if (r < 0) {
		OPENSSL_cleanse(pt, ctl);
		free(pt);
		return sp_error(err, SP_ERR_SIGNATURE,
				"JWE: authentication tag mismatch (tampered or wrong key)");
	}
	pt[ctl] = 0;
	*out = pt;
	*len = ctl;
	return 0;
}

/* ---- JWT (ES256) ------------------------------------------------------ */

int sp_kbs_token_sign(char **out, const sp_kbs_key *key, const json_t *claims,
		      sp_err **err)
{
	if (!key->ec)
		return sp_error(err, SP_ERR_INVALID, "the token key must be EC P-256 (ES256)");
	_cleanup_json_ json_t *hdr = json_pack("{s:s,s:s}", "alg", "ES256", "typ", "JWT");
	_cleanup_free_ char *hj = sp_json_dump_canonical(hdr);
	_cleanup_free_ char *cj = sp_json_dump_canonical(claims);
	_cleanup_free_ char *h64 = sp_base64_encode(hj, strlen(hj), SP_B64_URL);
	_cleanup_free_ char *c64 = sp_base64_encode(cj, strlen(cj), SP_B64_URL);
	_cleanup_free_ char *input = sp_xasprintf("%s.%s", h64, c64);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t der[128];
	size_t dl = sizeof(der);
	int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
		 EVP_DigestSign(md, der, &dl, (uint8_t *)input, strlen(input)) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return sp_error(err, SP_ERR_SYSTEM, "cannot sign the token");
	const uint8_t *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)dl);
	if (!sig)
		return sp_error(err, SP_ERR_SYSTEM, "cannot decode the token signature");
	uint8_t raw[64];
	BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32);
	BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32);
	ECDSA_SIG_free(sig);
	_cleanup_free_ char *s64 = sp_base64_encode(raw, sizeof(raw), SP_B64_URL);
	*out = sp_xasprintf("%s.%s", input, s64);
	return 0;
}

int sp_kbs_token_verify(json_t **claims, const sp_kbs_key *key, const char *token,
			time_t now, sp_err **err)
{
	const char *d1 = strchr(token, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || !d2 || strchr(d2 + 1, '.'))
		return sp_error(err, SP_ERR_PARSE, "token: not a JWT (three dot-separated parts)");
	_cleanup_free_ uint8_t *hb = NULL, *cb = NULL, *sb = NULL;
	size_t hl, cl, sl;
	int r;
	if ((r = sp_base64_decode(&hb, &hl, token, (size_t)(d1 - token), SP_B64_URL, err)) < 0 ||
	    (r = sp_base64_decode(&cb, &cl, d1 + 1, (size_t)(d2 - d1 - 1), SP_B64_URL, err)) < 0 ||
	    (r = sp_base64_decode(&sb, &sl, d2 + 1, strlen(d2 + 1), SP_B64_URL, err)) < 0)
		return sp_error_wrap(err, "token");
	_cleanup_json_ json_t *hdr = NULL;
	if ((r = sp_json_parse(&hdr, hb, hl, "token header", err)) < 0)
		return r;
	const char *alg = NULL;
	if ((r = sp_json_get_string(hdr, "alg", true, &alg, "token header", err)) < 0)
		return r;
	if (strcmp(alg, "ES256") || sl != 64)
		return sp_error(err, SP_ERR_SIGNATURE, "token: not an ES256 JWT");
	ECDSA_SIG *sig = ECDSA_SIG_new();
	if (!sig)
		sp_oom();
	ECDSA_SIG_set0(sig, BN_bin2bn(sb, 32, NULL), BN_bin2bn(sb + 32, 32, NULL));
	uint8_t *der = NULL;
	int dl = i2d_ECDSA_SIG(sig, &der);
	ECDSA_SIG_free(sig);
	if (dl <= 0)
		sp_oom();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
		 EVP_DigestVerify(md, der, (size_t)dl, (const uint8_t *)token,
				  (size_t)(d2 - token)) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ERR_clear_error();
	if (!ok)
		return sp_error(err, SP_ERR_SIGNATURE, "token: signature does not verify");
	_cleanup_json_ json_t *c = NULL;
	if ((r = sp_json_parse(&c, cb, cl, "token claims", err)) < 0)
		return r;
	int64_t exp = 0;
	if ((r = sp_json_get_int(c, "exp", true, &exp, "token claims", err)) < 0)
		return r;
	if ((int64_t)now >= exp)
		return sp_error(err, SP_ERR_APPRAISAL, "token: expired");
	*claims = sp_steal_ptr(&c);
	return 0;
}

/* ---- ES256 over arbitrary bytes (JWS signatures, raw r||s) ------------- */

int sp_kbs_es256_sign(uint8_t out[64], const sp_kbs_key *key, const void *data, size_t len,
		      sp_err **err)
{
	if (!key->ec)
		return sp_error(err, SP_ERR_INVALID, "ES256 needs an EC P-256 key");
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t der[128];
	size_t dl = sizeof(der);
	int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
		 EVP_DigestSign(md, der, &dl, data, len) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return sp_error(err, SP_ERR_SYSTEM, "ES256 signing failed");
	const uint8_t *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)dl);
	if (!sig)
		return sp_error(err, SP_ERR_SYSTEM, "cannot decode an ECDSA signature");
	BN_bn2binpad(ECDSA_SIG_get0_r(sig), out, 32);
	BN_bn2binpad(ECDSA_SIG_get0_s(sig), out + 32, 32);
	ECDSA_SIG_free(sig);
	return 0;
}

int sp_kbs_es256_verify(const sp_kbs_key *key, const void *data, size_t len,
			const uint8_t *sig, size_t sig_len, sp_err **err)
{
	if (!key->ec || sig_len != 64)
		return sp_error(err, SP_ERR_SIGNATURE,
				"ES256: want an EC P-256 key and a 64-byte signature");
	ECDSA_SIG *s = ECDSA_SIG_new();
	if (!s)
		sp_oom();
	ECDSA_SIG_set0(s, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	uint8_t *der = NULL;
	int dl = i2d_ECDSA_SIG(s, &der);
	ECDSA_SIG_free(s);
	if (dl <= 0)
		sp_oom();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
		 EVP_DigestVerify(md, der, (size_t)dl, data, len) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ERR_clear_error();
	if (!ok)
		return sp_error(err, SP_ERR_SIGNATURE, "ES256 signature does not verify");
	return 0;
}
