/* SPDX-License-Identifier: Apache-2.0 */
/* Key broker pieces: JWE both ways and tampering, JCS against RFC 8785's
 * ordering example, the REPORT_DATA hash, tokens, the policy, sessions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"
#include "sealpod/kbs.h"
#include "sealpod/sealed.h"
#include "sealpod/snp.h"
#include "vectors.h"

#define VEC SP_SOURCE_ROOT "/tests/vectors/snp/"

static void roundtrip(sp_kbs_key *k)
{
	_cleanup_err_ sp_err *err = NULL;
	static const uint8_t msg[] = "resource bytes \x00\x01\x02 and more";
	json_t *jwe = NULL;
	assert_int_equal(sp_kbs_jwe_encrypt(&jwe, k, msg, sizeof(msg), &err), 0);
	/* The recipient's public JWK is all the broker has. */
	uint8_t *pt = NULL;
	size_t len = 0;
	assert_int_equal(sp_kbs_jwe_decrypt(&pt, &len, k, jwe, &err), 0);
	assert_int_equal(len, sizeof(msg));
	assert_memory_equal(pt, msg, len);
	free(pt);

	/* Any member changed: the tag, the ciphertext, the protected header. */
	const char *members[] = {"tag", "ciphertext", "iv", "protected", "encrypted_key"};
	for (size_t i = 0; i < SP_ARRAY_LEN(members); i++) {
		json_t *t = json_deep_copy(jwe);
		char *s = sp_xstrdup(json_string_value(json_object_get(t, members[i])));
		s[1] = s[1] == 'A' ? 'B' : 'A';
		json_object_set_new(t, members[i], json_string(s));
		free(s);
		sp_err *e2 = NULL;
		pt = NULL;
		assert_true(sp_kbs_jwe_decrypt(&pt, &len, k, t, &e2) < 0);
		assert_null(pt);
		sp_err_free(e2);
		json_decref(t);
	}
	/* Another key of the same kind cannot decrypt. */
	json_decref(jwe);
}

static void test_jwe_ec(void **state)
{
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_kbs_key_ sp_kbs_key *k = NULL, *other = NULL, *pub = NULL;
	assert_int_equal(sp_kbs_key_generate_ec(&k, &err), 0);
	roundtrip(k);
	/* Encrypt to the public half parsed from the JWK, as the broker does. */
	_cleanup_json_ json_t *jwk = sp_kbs_key_public_jwk(k);
	assert_string_equal(json_string_value(json_object_get(jwk, "alg")), "ECDH-ES+A256KW");
	assert_int_equal(sp_kbs_jwk_parse(&pub, jwk, &err), 0);
	_cleanup_json_ json_t *jwe = NULL;
	assert_int_equal(sp_kbs_jwe_encrypt(&jwe, pub, (const uint8_t *)"hi", 2, &err), 0);
	uint8_t *pt = NULL;
	size_t len = 0;
	assert_int_equal(sp_kbs_jwe_decrypt(&pt, &len, k, jwe, &err), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(pt, "hi", 2);
	free(pt);
	assert_int_equal(sp_kbs_key_generate_ec(&other, &err), 0);
	pt = NULL;
	assert_true(sp_kbs_jwe_decrypt(&pt, &len, other, jwe, &err) < 0);
	assert_int_equal(err->code, SP_ERR_SIGNATURE);
	/* The header says what the trustee client expects. */
	const char *prot = json_string_value(json_object_get(jwe, "protected"));
	uint8_t *hb = NULL;
	size_t hl = 0;
	assert_int_equal(sp_base64_decode(&hb, &hl, prot, strlen(prot), SP_B64_URL, NULL), 0);
	json_t *hdr = NULL;
	assert_int_equal(sp_json_parse(&hdr, hb, hl, "h", NULL), 0);
	assert_string_equal(json_string_value(json_object_get(hdr, "alg")), "ECDH-ES+A256KW");
	assert_string_equal(json_string_value(json_object_get(hdr, "enc")), "A256GCM");
	assert_string_equal(json_string_value(json_object_get(json_object_get(hdr, "epk"), "crv")),
			    "P-256");
	json_decref(hdr);
	free(hb);
}

static void test_jwe_rsa(void **state)
{
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_kbs_key_ sp_kbs_key *k = NULL, *pub = NULL;
	assert_int_equal(sp_kbs_key_generate_rsa(&k, 2048, &err), 0);
	roundtrip(k);
	_cleanup_json_ json_t *jwk = sp_kbs_key_public_jwk(k);
	assert_string_equal(json_string_value(json_object_get(jwk, "alg")), "RSA-OAEP-256");
	assert_int_equal(sp_kbs_jwk_parse(&pub, jwk, &err), 0);
}

static void test_jwk_refused(void **state)
{
	const char *bad[] = {
		"{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}",
		("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
		 "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"), /* not on the curve */
		"{\"kty\":\"RSA\",\"alg\":\"RSA1_5\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
		"{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", /* too small */
		"{\"kty\":\"oct\",\"k\":\"AA\"}",
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
		json_t *j = json_loads(bad[i], 0, NULL);
		assert_non_null(j);
		sp_kbs_key *k = NULL;
		sp_err *err = NULL;
		assert_true(sp_kbs_jwk_parse(&k, j, &err) < 0);
		assert_null(k);
		sp_err_free(err);
		json_decref(j);
	}
}

static void test_jcs(void **state)
{
	_cleanup_err_ sp_err *err = NULL;
	/* RFC 8785 3.2.3's sorting example: UTF-16 code unit order puts the
	 * emoji (a surrogate pair) before U+FB33. */
	const char *in = "{\"\\u20ac\":\"Euro Sign\",\"\\r\":\"Carriage Return\","
			 "\"\\ufb33\":\"Hebrew Letter Dalet With Dagesh\",\"1\":\"One\","
			 "\"\\ud83d\\ude00\":\"Emoji: Grinning Face\",\"\\u0080\":\"Control\","
			 "\"\\u00f6\":\"Latin Small Letter O With Diaeresis\"}";
	json_t *j = json_loads(in, 0, NULL);
	assert_non_null(j);
	char *out = NULL;
	assert_int_equal(sp_kbs_jcs(&out, j, &err), 0);
	const char *want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
			   "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\","
			   "\"\xe2\x82\xac\":\"Euro Sign\",\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
			   "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}";
	assert_string_equal(out, want);
	free(out);
	json_decref(j);
	/* Escapes: lowercase \u00XX, short forms, '/' and non-ASCII verbatim. */
	j = json_pack("{s:s,s:b,s:n,s:[i,i]}", "s", "a\"\\/\x01\x1f\t\xc3\xa9", "t", 1, "n",
		      "a", 1, -2);
	assert_int_equal(sp_kbs_jcs(&out, j, &err), 0);
	assert_string_equal(out, "{\"a\":[1,-2],\"n\":null,\"s\":\"a\\\"\\\\/\\u0001\\u001f\\t\xc3\xa9\","
				 "\"t\":true}");
	free(out);
	json_decref(j);
	j = json_pack("{s:f}", "r", 1.5);
	assert_true(sp_kbs_jcs(&out, j, &err) < 0);
	json_decref(j);
}

static void test_report_data(void **state)
{
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_kbs_key_ sp_kbs_key *k = NULL;
	assert_int_equal(sp_kbs_key_generate_ec(&k, &err), 0);
	_cleanup_json_ json_t *jwk = sp_kbs_key_public_jwk(k);
	const char *nonce = "q5ZyFKP4R2bHn2f+3A4i0Q==";
	uint8_t rd[64];
	assert_int_equal(sp_kbs_report_data(rd, nonce, jwk, &err), 0);
	/* Independently: the canonical text written out by hand. */
	char *txt = sp_xasprintf(
		"{\"nonce\":\"%s\",\"tee-pubkey\":{\"alg\":\"ECDH-ES+A256KW\",\"crv\":\"P-256\","
		"\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}}",
		nonce, json_string_value(json_object_get(jwk, "x")),
		json_string_value(json_object_get(jwk, "y")));
	uint8_t want[64] = {0};
	sp_sha384(want, txt, strlen(txt));
	assert_memory_equal(rd, want, 64);
	/* For these simple objects the library's canonical dump agrees. */
	json_t *o = json_pack("{s:O,s:s}", "tee-pubkey", jwk, "nonce", nonce);
	char *c = sp_json_dump_canonical(o);
	assert_string_equal(c, txt);
	free(c);
	json_decref(o);
	free(txt);
}

static void test_requests(void **state)
{
	sp_kbs_auth_req a;
	sp_err *err = NULL;
	const char *ok = "{\"version\":\"0.4.0\",\"tee\":\"snp\",\"extra-params\":{}}";
	assert_int_equal(sp_kbs_auth_req_parse(&a, ok, strlen(ok), &err), 0);
	assert_string_equal(a.tee, "snp");
	const char *old = "{\"version\":\"0.1.0\",\"tee\":\"snp\",\"extra-params\":{}}";
	assert_int_equal(sp_kbs_auth_req_parse(&a, old, strlen(old), &err), SP_ERR_PROTOCOL);
	assert_int_equal(sp_kbs_http_status(err->code), 401);
	sp_err_clear(&err);
	assert_int_equal(sp_kbs_auth_req_parse(&a, "[]", 2, &err), SP_ERR_PARSE);
	assert_int_equal(sp_kbs_http_status(err->code), 400);
	sp_err_clear(&err);
	assert_int_equal(sp_kbs_resource_path_check("default/key/k1", NULL), 0);
	const char *bad[] = {"default/key", "a/b/c/d", "a/../b", "a//b", "a/.x/b", "a/b/c d",
			     "/a/b"};
	for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++)
		assert_true(sp_kbs_resource_path_check(bad[i], NULL) < 0);
	assert_int_equal(sp_kbs_http_status(SP_ERR_DENIED), 403);
	assert_int_equal(sp_kbs_http_status(SP_ERR_NOT_FOUND), 404);
	assert_int_equal(sp_kbs_http_status(SP_ERR_SYSTEM), 500);
}

static void test_token(void **state)
{
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_kbs_key_ sp_kbs_key *k = NULL, *other = NULL;
	assert_int_equal(sp_kbs_key_generate_ec(&k, &err), 0);
	assert_int_equal(sp_kbs_key_generate_ec(&other, &err), 0);
	_cleanup_json_ json_t *c = json_pack("{s:s,s:I}", "host_data", "ab", "exp",
					     (json_int_t)1000);
	char *tok = NULL;
	assert_int_equal(sp_kbs_token_sign(&tok, k, c, &err), 0);
	json_t *got = NULL;
	assert_int_equal(sp_kbs_token_verify(&got, k, tok, 999, &err), 0);
	assert_string_equal(json_string_value(json_object_get(got, "host_data")), "ab");
	json_decref(got);
	assert_int_equal(sp_kbs_token_verify(&got, k, tok, 1000, &err), SP_ERR_APPRAISAL);
	sp_err_clear(&err);
	assert_int_equal(sp_kbs_token_verify(&got, other, tok, 999, &err), SP_ERR_SIGNATURE);
	sp_err_clear(&err);
	/* Changed claims, same signature. */
	char *dot = strchr(tok, '.');
	dot[2] = dot[2] == 'A' ? 'B' : 'A';
	assert_true(sp_kbs_token_verify(&got, k, tok, 999, &err) < 0);
	free(tok);
}

static void test_policy(void **state)
{
	_cleanup_err_ sp_err *err = NULL;
	char hd[65], m[97];
	memset(hd, 'a', 64);
	hd[64] = 0;
	memset(m, 'b', 96);
	m[96] = 0;
	_cleanup_json_ json_t *rule = json_pack("{s:[s],s:[s]}", "host_data", hd,
						"measurements", m);
	_cleanup_json_ json_t *claims = json_pack("{s:s,s:s}", "host_data", hd, "measurement", m);
	assert_int_equal(sp_kbs_policy_validate(rule, &err), 0);
	assert_int_equal(sp_kbs_policy_check(rule, "r/t/g", claims, NULL, &err), 0);
	json_object_set_new(claims, "measurement", json_string("cc"));
	assert_int_equal(sp_kbs_policy_check(rule, "r/t/g", claims, NULL, &err), SP_ERR_DENIED);
	assert_non_null(strstr(err->msg, "MEASUREMENT"));
	sp_err_clear(&err);
	assert_int_equal(sp_kbs_policy_check(NULL, "r/t/g", claims, NULL, &err), SP_ERR_DENIED);
	sp_err_clear(&err);
	_cleanup_json_ json_t *empty = json_object();
	assert_true(sp_kbs_policy_validate(empty, &err) < 0);
	sp_err_clear(&err);
	_cleanup_json_ json_t *unknown = json_pack("{s:[s],s:b}", "host_data", hd, "any", 1);
	assert_true(sp_kbs_policy_validate(unknown, &err) < 0);
	sp_err_clear(&err);
	/* manifest_key: an Ed25519 public key; the measurement must be one the
	 * caller found in manifests signed by it. */
	EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	BIO *b = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PUBKEY(b, p), 1);
	char *pem;
	long pl = BIO_get_mem_data(b, &pem);
	_cleanup_json_ json_t *mr = json_pack("{s:s%}", "manifest_key", pem, (size_t)pl);
	BIO_free(b);
	EVP_PKEY_free(p);
	assert_int_equal(sp_kbs_policy_validate(mr, &err), 0);
	_cleanup_json_ json_t *listed = json_pack("[s,s]", "00", m);
	_cleanup_json_ json_t *other = json_pack("[s]", "00");
	json_object_set_new(claims, "measurement", json_string(m));
	assert_int_equal(sp_kbs_policy_check(mr, "r/t/g", claims, listed, &err), 0);
	assert_int_equal(sp_kbs_policy_check(mr, "r/t/g", claims, other, &err), SP_ERR_DENIED);
	assert_non_null(strstr(err->msg, "manifest"));
	sp_err_clear(&err);
	assert_int_equal(sp_kbs_policy_check(mr, "r/t/g", claims, NULL, &err), SP_ERR_DENIED);
	sp_err_clear(&err);
	/* With host_data too, both must match. */
	json_object_set_new(mr, "host_data", json_pack("[s]", hd));
	json_object_set_new(claims, "host_data", json_string("cc"));
	assert_int_equal(sp_kbs_policy_check(mr, "r/t/g", claims, listed, &err), SP_ERR_DENIED);
	sp_err_clear(&err);
	_cleanup_json_ json_t *badkey = json_pack("{s:s}", "manifest_key", "not a key");
	assert_true(sp_kbs_policy_validate(badkey, &err) < 0);
}

static void test_sessions(void **state)
{
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_free_ char *dir = NULL;
	assert_int_equal(sp_mkdtemp(&dir, "sp-kbs-unit", &err), 0);
	_cleanup_free_ char *db = sp_xasprintf("%s/kbs.db", dir);
	sp_kbs_store *s = NULL;
	assert_int_equal(sp_kbs_store_open(&s, db, &err), 0);
	sp_kbs_session a, b, g;
	assert_int_equal(sp_kbs_session_new(s, "snp", 1000, 300, &a, &err), 0);
	assert_int_equal(sp_kbs_session_new(s, "sim", 1000, 300, &b, &err), 0);
	assert_int_equal(strlen(a.id), 32);
	assert_string_not_equal(a.id, b.id);
	assert_string_not_equal(a.nonce, b.nonce);
	uint8_t *raw = NULL;
	size_t rl = 0;
	assert_int_equal(sp_base64_decode(&raw, &rl, a.nonce, strlen(a.nonce), SP_B64_STD, NULL), 0);
	assert_int_equal(rl, SP_KBS_NONCE_LEN);
	free(raw);
	assert_int_equal(sp_kbs_session_get(s, a.id, 1299, &g, &err), 0);
	assert_string_equal(g.nonce, a.nonce);
	assert_string_equal(g.tee, "snp");
	assert_false(g.attested);
	sp_kbs_session_clear(&g);
	json_t *claims = json_pack("{s:s}", "host_data", "ab");
	assert_int_equal(sp_kbs_session_set_attested(s, a.id, claims, &err), 0);
	json_decref(claims);
	assert_int_equal(sp_kbs_session_get(s, a.id, 1001, &g, &err), 0);
	assert_true(g.attested);
	assert_string_equal(json_string_value(json_object_get(g.claims, "host_data")), "ab");
	sp_kbs_session_clear(&g);
	/* Expiry: at expires the session is gone, and stays gone. */
	assert_int_equal(sp_kbs_session_get(s, a.id, 1300, &g, &err), SP_ERR_NOT_FOUND);
	sp_err_clear(&err);
	assert_int_equal(sp_kbs_session_get(s, a.id, 1000, &g, &err), SP_ERR_NOT_FOUND);
	sp_err_clear(&err);
	assert_int_equal(sp_kbs_session_get(s, "nope", 1000, &g, &err), SP_ERR_NOT_FOUND);
	sp_err_clear(&err);
	assert_int_equal(sp_kbs_session_expire(s, 1300, &err), 1); /* b */
	assert_int_equal(sp_kbs_session_set_attested(s, b.id, claims = json_object(), &err),
			 SP_ERR_NOT_FOUND);
	json_decref(claims);
	sp_err_clear(&err);
	/* Resources and policies persist across reopen. */
	assert_int_equal(sp_kbs_store_put_resource(s, "r/t/g", (const uint8_t *)"\0x", 2, &err), 0);
	sp_kbs_store_close(s);
	assert_int_equal(sp_kbs_store_open(&s, db, &err), 0);
	uint8_t *d = NULL;
	size_t dl = 0;
	assert_int_equal(sp_kbs_store_get_resource(s, "r/t/g", &d, &dl, &err), 0);
	assert_int_equal(dl, 2);
	assert_memory_equal(d, "\0x", 2);
	free(d);
	assert_int_equal(sp_kbs_store_get_resource(s, "r/t/x", &d, &dl, &err), SP_ERR_NOT_FOUND);
	sp_err_clear(&err);
	json_t *rule = NULL;
	assert_int_equal(sp_kbs_store_get_policy(s, "r/t/g", &rule, &err), 0);
	assert_null(rule);
	/* Policies: set, list (sorted), replace, delete. */
	json_t *all = NULL, *r1 = json_pack("{s:[s]}", "host_data", "aa"),
	       *r2 = json_pack("{s:[s]}", "measurements", "bb");
	assert_int_equal(sp_kbs_store_list_policies(s, &all, &err), 0);
	assert_int_equal(json_array_size(all), 0);
	json_decref(all);
	assert_int_equal(sp_kbs_store_put_policy(s, "r/t/z", r1, &err), 0);
	assert_int_equal(sp_kbs_store_put_policy(s, "r/t/g", r1, &err), 0);
	assert_int_equal(sp_kbs_store_put_policy(s, "r/t/g", r2, &err), 0);
	assert_int_equal(sp_kbs_store_list_policies(s, &all, &err), 0);
	assert_int_equal(json_array_size(all), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0), "path")),
			    "r/t/g");
	assert_true(json_equal(json_object_get(json_array_get(all, 0), "rule"), r2));
	assert_true(json_equal(json_object_get(json_array_get(all, 1), "rule"), r1));
	json_decref(all);
	assert_int_equal(sp_kbs_store_delete_policy(s, "r/t/g", &err), 0);
	assert_int_equal(sp_kbs_store_delete_policy(s, "r/t/g", &err), SP_ERR_NOT_FOUND);
	sp_err_clear(&err);
	assert_int_equal(sp_kbs_store_get_policy(s, "r/t/g", &rule, &err), 0);
	assert_null(rule);
	json_decref(r1);
	json_decref(r2);
	sp_kbs_store_close(s);
	assert_int_equal(sp_rm_rf(dir, &err), 0);
}

/* ---- The sev crate's object form of a report (guest-components) ---- */

struct sevcase {
	const char *report, *vek, *chain;
	time_t at;
	bool debug;
};

static const struct sevcase sevcases[] = {
	{VEC "virtee-sev/tests_certs_data_report_milan.hex",
	 VEC "virtee-sev/tests_certs_data_vcek_milan.der",
	 VEC "virtee-sev/tests_certs_data_cert_chain_milan", 0, false},
	{VEC "trustee/deps_verifier_test_data_snp_test-report.bin",
	 VEC "trustee/deps_verifier_test_data_snp_test-vcek.der",
	 VEC "trustee/deps_verifier_src_snp_milan_ask_ark_asvk.pem", 0, false},
	{VEC "trustee/deps_verifier_test_data_snp_test-vlek-report.bin",
	 VEC "trustee/deps_verifier_test_data_snp_test-vlek.der",
	 VEC "trustee/deps_verifier_src_snp_milan_ask_ark_asvk.pem",
	 1748736000 /* 2025-06-01 */, false},
	{VEC "go-sev-guest/verify_testdata_attestation.bin",
	 VEC "go-sev-guest/verify_testdata_vcek.testcer",
	 VEC "go-sev-guest/verify_trust_ask_ark_milan.pem", 0, true},
};

/* An attest body whose primary evidence is the sev object form: the
 * report object and a cert_chain of {cert_type, data: [bytes]} entries,
 * with entries the verifier must skip (CRL, OTHER, Empty). */
static char *sev_attest_body(const json_t *rep_obj, const uint8_t *vek, size_t vl)
{
	json_t *data = json_array();
	for (size_t i = 0; i < vl; i++)
		json_array_append_new(data, json_integer(vek[i]));
	_cleanup_kbs_key_ sp_kbs_key *k = NULL;
	assert_int_equal(sp_kbs_key_generate_ec(&k, NULL), 0);
	json_t *b = json_pack(
		"{s:{s:s,s:o},s:{s:{s:O,s:[{s:s,s:o},{s:s,s:[i]},{s:{s:s},s:[i]},{s:s,s:[]}]},"
		"s:s}}",
		"runtime-data", "nonce", "bm9uY2U=", "tee-pubkey", sp_kbs_key_public_jwk(k),
		"tee-evidence", "primary_evidence", "attestation_report", rep_obj, "cert_chain",
		"cert_type", "VCEK", "data", data, "cert_type", "CRL", "data", 1, "cert_type",
		"OTHER", "00000000-0000-0000-0000-00000000000a", "data", 2, "cert_type", "Empty",
		"data", "additional_evidence", "");
	assert_non_null(b);
	char *s = sp_json_dump_canonical(b);
	json_decref(b);
	return s;
}

static void test_sev_report_json(void **state)
{
	for (size_t i = 0; i < SP_ARRAY_LEN(sevcases); i++) {
		const struct sevcase *c = &sevcases[i];
		size_t len, vl, cl;
		_cleanup_free_ uint8_t *rep = load_vector(c->report, &len);
		_cleanup_free_ uint8_t *vek = load_vector(c->vek, &vl);
		_cleanup_free_ uint8_t *chain = load_vector(c->chain, &cl);
		_cleanup_err_ sp_err *err = NULL;
		_cleanup_json_ json_t *o = NULL;
		if (sp_kbs_sev_report_to_json(&o, rep, len, &err) < 0)
			fail_msg("%s: %s", c->report, sp_err_msg(err));
		/* The sev crate's member names and shapes. */
		assert_true(json_is_integer(json_object_get(o, "key_info")));
		assert_true(json_is_integer(json_object_get(o, "plat_info")));
		assert_int_equal(json_array_size(json_object_get(o, "measurement")), 48);
		assert_int_equal(json_array_size(json_object_get(json_object_get(o, "signature"),
								  "r")),
				 72);
		assert_true(json_is_null(json_object_get(json_object_get(o, "reported_tcb"),
							 "fmc")));
		assert_true(json_is_integer(json_object_get(json_object_get(o, "current"),
							    "major")));
		/* Back to the same bytes. */
		uint8_t back[SP_SNP_REPORT_LEN];
		assert_int_equal(sp_kbs_sev_report_from_json(back, o, &err), 0);
		assert_memory_equal(back, rep, SP_SNP_REPORT_LEN);

		/* Through the attest parser, then the real verifier. */
		_cleanup_free_ char *body = sev_attest_body(o, vek, vl);
		sp_kbs_attest_req a;
		if (sp_kbs_attest_req_parse(&a, body, strlen(body), &err) < 0)
			fail_msg("%s: %s", c->report, sp_err_msg(err));
		assert_int_equal(a.report_len, SP_SNP_REPORT_LEN);
		assert_memory_equal(a.report, rep, SP_SNP_REPORT_LEN);
		assert_int_equal(a.n_certs, 1); /* CRL, OTHER and Empty skipped */
		assert_int_equal(a.cert_lens[0], vl);
		sp_snp_verifier *v = sp_snp_verifier_new();
		assert_int_equal(sp_snp_verifier_add_certs(v, chain, cl, &err), 0);
		assert_int_equal(sp_snp_verifier_add_certs(v, a.certs[0], a.cert_lens[0], &err), 0);
		sp_snp_appraisal ap;
		sp_snp_appraisal_init(&ap);
		ap.at = c->at;
		ap.allow_debug = c->debug;
		if (sp_snp_verify(v, a.report, a.report_len, &ap, NULL, &err) < 0)
			fail_msg("%s: %s", c->report, sp_err_msg(err));
		sp_kbs_attest_req_clear(&a);

		/* One changed member: the rebuilt bytes no longer verify. */
		json_t *m = json_object_get(o, "measurement");
		json_int_t b0 = json_integer_value(json_array_get(m, 0));
		json_array_set_new(m, 0, json_integer(b0 ^ 1));
		assert_int_equal(sp_kbs_sev_report_from_json(back, o, &err), 0);
		assert_int_equal(sp_snp_verify(v, back, sizeof(back), &ap, NULL, &err),
				 SP_ERR_SIGNATURE);
		sp_err_clear(&err);
		json_array_set_new(m, 0, json_integer(b0));
		sp_snp_verifier_free(v);
	}
}

static void test_sev_report_json_refused(void **state)
{
	size_t len;
	_cleanup_free_ uint8_t *rep = load_vector(sevcases[1].report, &len);
	_cleanup_json_ json_t *o = NULL;
	uint8_t back[SP_SNP_REPORT_LEN];
	sp_err *err = NULL;
	assert_int_equal(sp_kbs_sev_report_to_json(&o, rep, len, NULL), 0);
	struct {
		const char *member;
		json_t *value; /* NULL: delete */
		const char *msg;
	} bad[] = {
		{"measurement", NULL, "measurement"},
		{"measurement", json_pack("[i,i]", 1, 2), "48 byte values"},
		{"host_data", json_string("00"), "host_data"},
		{"version", json_integer(9), "version"},
		{"version", json_string("2"), "version"},
		{"sig_algo", json_integer(2), "algorithm"},
		{"vmpl", json_integer(-1), "vmpl"},
		{"policy", json_real(1.5), "policy"},
		{"current_tcb", json_pack("{s:i}", "bootloader", 1), "current_tcb"},
		{"reported_tcb", json_pack("{s:i,s:i,s:i,s:i}", "bootloader", 256, "tee", 0,
					   "snp", 0, "microcode", 0), "reported_tcb"},
		{"current", json_pack("{s:i,s:i}", "major", 1, "minor", 2), "current"},
		{"signature", json_pack("{s:[]}", "r"), "signature"},
		{"key_info", json_integer(0x20), "signer_info"},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
		json_t *t = json_deep_copy(o);
		if (bad[i].value)
			json_object_set_new(t, bad[i].member, bad[i].value);
		else
			json_object_del(t, bad[i].member);
		int r = sp_kbs_sev_report_from_json(back, t, &err);
		if (r >= 0)
			fail_msg("case %zu (%s) accepted", i, bad[i].member);
		if (!strstr(sp_err_msg(err), bad[i].msg))
			fail_msg("case %zu: `%s` lacks `%s`", i, sp_err_msg(err), bad[i].msg);
		sp_err_clear(&err);
		json_decref(t);
	}
	/* A byte value outside 0..255 inside an array. */
	json_t *t = json_deep_copy(o);
	json_array_set_new(json_object_get(t, "chip_id"), 3, json_integer(300));
	assert_int_equal(sp_kbs_sev_report_from_json(back, t, &err), SP_ERR_PARSE);
	assert_non_null(strstr(sp_err_msg(err), "chip_id[3]"));
	sp_err_clear(&err);
	json_decref(t);
	/* Not an object at all. */
	json_t *arr = json_array();
	assert_int_equal(sp_kbs_sev_report_from_json(back, arr, &err), SP_ERR_PARSE);
	json_decref(arr);
	sp_err_clear(&err);
	/* A report with non-zero reserved bytes has no object form. */
	uint8_t odd[SP_SNP_REPORT_LEN];
	memcpy(odd, rep, sizeof(odd));
	odd[0x1F0 - 1] = 0; /* reserved byte after committed version */
	odd[0x250] = 7;      /* reserved area before the signature */
	json_t *none = NULL;
	assert_true(sp_kbs_sev_report_to_json(&none, odd, sizeof(odd), &err) < 0);
	assert_null(none);
	sp_err_clear(&err);
}

/* ---- Sealed secrets (CoCo's format) ---- */

struct fake_broker {
	json_t *resources; /* "repo/type/tag" -> string */
	int calls;
	char last[400];
};

static int fake_fetch(void *ctx, const sp_sealed_uri *u, uint8_t **out, size_t *len,
		      sp_err **err)
{
	struct fake_broker *b = ctx;
	b->calls++;
	snprintf(b->last, sizeof(b->last), "%s/%s/%s", u->repo, u->type, u->tag);
	const char *v = json_string_value(json_object_get(b->resources, b->last));
	if (!v)
		return sp_error(err, SP_ERR_NOT_FOUND, "no resource %s", b->last);
	*out = (uint8_t *)sp_xstrdup(v);
	*len = strlen(v);
	return 0;
}

static char *seal_payload(const char *payload_json, const char *header)
{
	char *p64 = sp_base64_encode(payload_json, strlen(payload_json), SP_B64_URL);
	char *v = sp_xasprintf("sealed.%s.%s.fakesignature", header, p64);
	free(p64);
	return v;
}

static void test_sealed_parse(void **state)
{
	sp_sealed_secret s;
	sp_err *err = NULL;
	/* CoCo's documented vault pointer, unsigned. */
	_cleanup_free_ char *v = seal_payload(
		"{\"version\":\"0.1.0\",\"type\":\"vault\",\"provider\":\"kbs\","
		"\"name\":\"kbs:///default/sealed-secret/test\",\"provider_settings\":{},"
		"\"annotations\":{}}", "fakejwsheader");
	assert_true(sp_sealed_is_sealed(v, strlen(v)));
	assert_int_equal(sp_sealed_parse(&s, v, strlen(v), &err), 0);
	assert_int_equal(s.type, SP_SEALED_VAULT);
	assert_string_equal(s.provider, "kbs");
	assert_string_equal(s.resource.host, "");
	assert_string_equal(s.resource.repo, "default");
	assert_string_equal(s.resource.type, "sealed-secret");
	assert_string_equal(s.resource.tag, "test");
	assert_null(s.header);
	sp_sealed_clear(&s);
	/* With a host, and annotations absent (optional). */
	_cleanup_free_ char *vh = seal_payload(
		"{\"version\":\"0.1.0\",\"type\":\"vault\",\"provider\":\"kbs\","
		"\"name\":\"kbs://broker.example:8080/r/t/g\",\"provider_settings\":{}}", "e30");
	assert_int_equal(sp_sealed_parse(&s, vh, strlen(vh), &err), 0);
	assert_string_equal(s.resource.host, "broker.example:8080");
	assert_non_null(s.header); /* "e30" is {} */
	sp_sealed_clear(&s);
	/* Envelope: parsed, validated. */
	_cleanup_free_ char *ve = seal_payload(
		"{\"version\":\"0.1.0\",\"type\":\"envelope\",\"provider\":\"aliyun\","
		"\"key_id\":\"k1\",\"encrypted_key\":\"AAEC\",\"encrypted_data\":\"AwQF\","
		"\"wrap_type\":\"A256GCM\",\"iv\":\"AAAAAAAAAAAAAAAA\",\"provider_settings\":{},"
		"\"annotations\":{}}", "fakejwsheader");
	assert_int_equal(sp_sealed_parse(&s, ve, strlen(ve), &err), 0);
	assert_int_equal(s.type, SP_SEALED_ENVELOPE);
	assert_int_equal(s.iv_len, 12);
	assert_int_equal(s.encrypted_key_len, 3);
	struct fake_broker fb = {.resources = json_object()};
	uint8_t *out = NULL;
	size_t len = 0;
	assert_int_equal(sp_sealed_unseal(&out, &len, &s, fake_fetch, &fb, NULL, &err),
			 SP_ERR_UNSUPPORTED);
	assert_non_null(strstr(sp_err_msg(err), "envelope"));
	sp_err_clear(&err);
	sp_sealed_clear(&s);

	/* Refused, each with a message that does not quote the value. */
	const char *payloads[] = {
		"{\"version\":\"0.2.0\",\"type\":\"vault\",\"provider\":\"kbs\",\"name\":\"kbs:///a/b/c\",\"provider_settings\":{}}",
		"{\"version\":\"0.1.0\",\"type\":\"other\",\"provider\":\"kbs\",\"name\":\"kbs:///a/b/c\",\"provider_settings\":{}}",
		"{\"version\":\"0.1.0\",\"type\":\"vault\",\"provider\":\"kbs\",\"name\":\"kbs:///a/b/c\"}",
		"{\"version\":\"0.1.0\",\"type\":\"vault\",\"name\":\"kbs:///a/b/c\",\"provider_settings\":{}}",
		"{\"version\":\"0.1.0\",\"type\":\"vault\",\"provider\":\"kbs\",\"provider_settings\":{}}",
		"{\"version\":\"0.1.0\",\"type\":\"vault\",\"provider\":\"kbs\",\"name\":\"kbs:///a/../c\",\"provider_settings\":{}}",
		"{\"version\":\"0.1.0\",\"type\":\"vault\",\"provider\":\"kbs\",\"name\":\"https://x/a/b/c\",\"provider_settings\":{}}",
		"{\"version\":\"0.1.0\",\"type\":\"vault\",\"provider\":\"kbs\",\"name\":\"kbs://h@st/a/b/c\",\"provider_settings\":{}}",
		"{\"version\":\"0.1.0\",\"type\":\"vault\",\"provider\":\"kbs\",\"name\":\"kbs:///a/b/c\",\"provider_settings\":{},\"annotations\":[]}",
		"{\"version\":\"0.1.0\",\"type\":\"envelope\",\"provider\":\"x\",\"key_id\":\"k\",\"encrypted_key\":\"AA==\",\"encrypted_data\":\"AA==\",\"wrap_type\":\"A256GCM\",\"iv\":\"AAAA\",\"provider_settings\":{}}",
		"{\"version\":\"0.1.0\",\"type\":\"envelope\",\"provider\":\"x\",\"key_id\":\"k\",\"encrypted_key\":\"!!\",\"encrypted_data\":\"AA==\",\"wrap_type\":\"A256GCM\",\"iv\":\"AAAAAAAAAAAAAAAA\",\"provider_settings\":{}}",
		"{\"version\":\"0.1.0\",\"type\":\"envelope\",\"provider\":\"x\",\"key_id\":\"k\",\"encrypted_key\":\"AA==\",\"encrypted_data\":\"AA==\",\"wrap_type\":\"A128CBC\",\"iv\":\"AAAAAAAAAAAAAAAA\",\"provider_settings\":{}}",
		"[1]",
		"not json",
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(payloads); i++) {
		_cleanup_free_ char *bad = seal_payload(payloads[i], "fakejwsheader");
		if (sp_sealed_parse(&s, bad, strlen(bad), &err) >= 0)
			fail_msg("payload %zu accepted", i);
		assert_null(strstr(sp_err_msg(err), bad + 30));
		sp_err_clear(&err);
	}
	const char *forms[] = {"sealed", "sealed.", "sealed.a.b", "sealed.a.b.c.d", "sealed..b.c",
			       "sealed.a..c", "sealed.a.b.", "sealed.a.b c.d", "notsealed.a.b.c",
			       "sealed.a.%%%.c"};
	for (size_t i = 0; i < SP_ARRAY_LEN(forms); i++) {
		if (sp_sealed_parse(&s, forms[i], strlen(forms[i]), &err) >= 0)
			fail_msg("form %zu accepted", i);
		sp_err_clear(&err);
	}
	json_decref(fb.resources);
}

static void test_sealed_unseal(void **state)
{
	sp_sealed_secret s;
	sp_err *err = NULL;
	struct fake_broker fb = {.resources = json_object()};
	json_object_set_new(fb.resources, "default/key/k1", json_string("the value"));
	_cleanup_free_ char *v = NULL;
	assert_int_equal(sp_sealed_seal_vault(&v, "kbs:///default/key/k1", NULL, NULL, &err), 0);
	assert_non_null(strstr(v, "sealed.fakejwsheader."));
	assert_int_equal(sp_sealed_parse(&s, v, strlen(v), &err), 0);
	uint8_t *out = NULL;
	size_t len = 0;
	assert_int_equal(sp_sealed_unseal(&out, &len, &s, fake_fetch, &fb, NULL, &err), 0);
	assert_int_equal(len, 9);
	assert_memory_equal(out, "the value", 9);
	assert_string_equal(fb.last, "default/key/k1");
	free(out);
	/* Required signature: an unsigned value is refused before any fetch. */
	sp_sealed_opts o;
	sp_sealed_opts_init(&o);
	o.require_signature = true;
	fb.calls = 0;
	assert_int_equal(sp_sealed_unseal(&out, &len, &s, fake_fetch, &fb, &o, &err),
			 SP_ERR_SIGNATURE);
	assert_int_equal(fb.calls, 0);
	sp_err_clear(&err);
	sp_sealed_clear(&s);
	/* A missing resource: the error names it. */
	_cleanup_free_ char *vm = NULL;
	assert_int_equal(sp_sealed_seal_vault(&vm, "kbs:///default/key/gone", NULL, NULL, &err), 0);
	assert_int_equal(sp_sealed_parse(&s, vm, strlen(vm), &err), 0);
	assert_int_equal(sp_sealed_unseal(&out, &len, &s, fake_fetch, &fb, NULL, &err),
			 SP_ERR_NOT_FOUND);
	assert_non_null(strstr(sp_err_msg(err), "default/key/gone"));
	sp_err_clear(&err);
	sp_sealed_clear(&s);
	/* Another broker host: refused unless allowed. */
	_cleanup_free_ char *vh = NULL;
	assert_int_equal(sp_sealed_seal_vault(&vh, "kbs://evil:1/default/key/k1", NULL, NULL,
					      &err), 0);
	assert_int_equal(sp_sealed_parse(&s, vh, strlen(vh), &err), 0);
	assert_int_equal(sp_sealed_unseal(&out, &len, &s, fake_fetch, &fb, NULL, &err),
			 SP_ERR_DENIED);
	sp_err_clear(&err);
	sp_sealed_opts oh;
	sp_sealed_opts_init(&oh);
	oh.allowed_host = "evil:1";
	assert_int_equal(sp_sealed_unseal(&out, &len, &s, fake_fetch, &fb, &oh, &err), 0);
	free(out);
	sp_sealed_clear(&s);

	/* Signed: the kid's JWK verifies; another key's does not; a payload
	 * moved under another signature does not. */
	_cleanup_kbs_key_ sp_kbs_key *ka = NULL, *kb = NULL;
	assert_int_equal(sp_kbs_key_generate_ec(&ka, &err), 0);
	assert_int_equal(sp_kbs_key_generate_ec(&kb, &err), 0);
	json_t *ja = sp_kbs_key_public_jwk(ka), *jb = sp_kbs_key_public_jwk(kb);
	json_object_set_new(ja, "alg", json_string("ES256"));
	char *ta = sp_json_dump_canonical(ja), *tb = sp_json_dump_canonical(jb);
	json_object_set_new(fb.resources, "default/keys/a", json_string(ta));
	json_object_set_new(fb.resources, "default/keys/b", json_string(tb));
	free(ta);
	free(tb);
	json_decref(ja);
	json_decref(jb);
	_cleanup_free_ char *sa = NULL, *sb = NULL, *sbad = NULL;
	assert_int_equal(sp_sealed_seal_vault(&sa, "kbs:///default/key/k1", ka, "kbs:///default/keys/a",
					      &err), 0);
	assert_int_equal(sp_sealed_parse(&s, sa, strlen(sa), &err), 0);
	assert_int_equal(sp_sealed_unseal(&out, &len, &s, fake_fetch, &fb, &o, &err), 0);
	assert_memory_equal(out, "the value", 9);
	free(out);
	sp_sealed_clear(&s);
	assert_int_equal(sp_sealed_seal_vault(&sb, "kbs:///default/key/k1", ka, "kbs:///default/keys/b",
					      &err), 0);
	assert_int_equal(sp_sealed_parse(&s, sb, strlen(sb), &err), 0);
	assert_int_equal(sp_sealed_unseal(&out, &len, &s, fake_fetch, &fb, &o, &err),
			 SP_ERR_SIGNATURE);
	assert_null(out);
	sp_err_clear(&err);
	sp_sealed_clear(&s);
	/* Swap in another payload (pointing at another resource). */
	_cleanup_free_ char *other = NULL;
	assert_int_equal(sp_sealed_seal_vault(&other, "kbs:///default/key/zz", NULL, NULL, &err), 0);
	const char *op = strchr(other + 7, '.') + 1, *ope = strchr(op, '.');
	const char *sp1 = strchr(sa + 7, '.'), *sp2 = strchr(sp1 + 1, '.');
	sbad = sp_xasprintf("%.*s.%.*s%s", (int)(sp1 - sa), sa, (int)(ope - op), op, sp2);
	assert_int_equal(sp_sealed_parse(&s, sbad, strlen(sbad), &err), 0);
	assert_string_equal(s.resource.tag, "zz");
	assert_int_equal(sp_sealed_unseal(&out, &len, &s, fake_fetch, &fb, &o, &err),
			 SP_ERR_SIGNATURE);
	sp_err_clear(&err);
	sp_sealed_clear(&s);
	json_decref(fb.resources);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jwe_ec),     cmocka_unit_test(test_jwe_rsa),
		cmocka_unit_test(test_jwk_refused), cmocka_unit_test(test_jcs),
		cmocka_unit_test(test_report_data), cmocka_unit_test(test_requests),
		cmocka_unit_test(test_token),      cmocka_unit_test(test_policy),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_sev_report_json),
		cmocka_unit_test(test_sev_report_json_refused),
		cmocka_unit_test(test_sealed_parse),
		cmocka_unit_test(test_sealed_unseal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
