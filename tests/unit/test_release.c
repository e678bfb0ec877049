/* SPDX-License-Identifier: Apache-2.0 */
/* Signed release manifests: Ed25519 sign/verify over the exact bytes,
 * another key, every byte changed, malformed signature files, the
 * measurements a manifest lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "sealpod/json.h"
#include "sealpod/release.h"

static sp_release_key *gen_key(bool public_only)
{
	EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(p);
	BIO *b = BIO_new(BIO_s_mem());
	if (public_only)
		assert_int_equal(PEM_write_bio_PUBKEY(b, p), 1);
	else
		assert_int_equal(PEM_write_bio_PrivateKey(b, p, NULL, NULL, 0, NULL, NULL), 1);
	char *d;
	long n = BIO_get_mem_data(b, &d);
	sp_release_key *k = NULL;
	sp_err *err = NULL;
	if (sp_release_key_load(&k, (uint8_t *)d, (size_t)n, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	BIO_free(b);
	EVP_PKEY_free(p);
	return k;
}

static const char MANIFEST[] =
	"{\n  \"format\": \"sealpod-guest-image/1\",\n  \"snp\": {\n"
	"    \"launch_measurement\": \"" "aabbccddeeff0011aabbccddeeff0011aabbccddeeff0011aabbccddeeff0011aabbccddeeff0011aabbccddeeff0011" "\",\n"
	"    \"sim_launch_measurement\": \"" "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30" "\"\n  }\n}\n";

static void test_sign_verify(void **state)
{
	_cleanup_release_key_ sp_release_key *k = gen_key(false), *other = gen_key(false);
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_free_ char *sig = NULL;
	const uint8_t *m = (const uint8_t *)MANIFEST;
	size_t ml = strlen(MANIFEST);
	assert_int_equal(sp_release_sign(&sig, k, m, ml, &err), 0);
	assert_non_null(strstr(sig, sp_release_key_id(k)));
	json_t *j = NULL;
	assert_int_equal(sp_release_verify(&j, k, m, ml, (uint8_t *)sig, strlen(sig), &err), 0);
	assert_string_equal(json_string_value(json_object_get(j, "format")),
			    "sealpod-guest-image/1");
	json_decref(j);
	/* Every byte of the manifest changed in turn fails. */
	uint8_t *copy = sp_xmemdup(m, ml);
	for (size_t i = 0; i < ml; i++) {
		copy[i] ^= 0x20;
		assert_int_equal(sp_release_verify(NULL, k, copy, ml, (uint8_t *)sig, strlen(sig),
						   &err),
				 SP_ERR_SIGNATURE);
		sp_err_clear(&err);
		copy[i] ^= 0x20;
	}
	free(copy);
	/* Another key: refused, naming the key ids. */
	assert_int_equal(sp_release_verify(NULL, other, m, ml, (uint8_t *)sig, strlen(sig), &err),
			 SP_ERR_SIGNATURE);
	assert_non_null(strstr(sp_err_msg(err), "another key"));
	sp_err_clear(&err);
	/* A signature by another key, relabelled with our key id. */
	_cleanup_free_ char *osig = NULL;
	assert_int_equal(sp_release_sign(&osig, other, m, ml, &err), 0);
	json_t *oj = NULL;
	assert_int_equal(sp_json_parse(&oj, osig, strlen(osig), "sig", &err), 0);
	json_object_set_new(oj, "key_id", json_string(sp_release_key_id(k)));
	_cleanup_free_ char *forged = sp_json_dump_canonical(oj);
	json_decref(oj);
	assert_int_equal(sp_release_verify(NULL, k, m, ml, (uint8_t *)forged, strlen(forged),
					   &err),
			 SP_ERR_SIGNATURE);
	assert_non_null(strstr(sp_err_msg(err), "does not verify"));
	sp_err_clear(&err);
	/* A public key verifies but cannot sign. */
	_cleanup_release_key_ sp_release_key *pub = gen_key(true);
	_cleanup_free_ char *nope = NULL;
	assert_int_equal(sp_release_sign(&nope, pub, m, ml, &err), SP_ERR_INVALID);
	sp_err_clear(&err);
}

static void test_sig_file_refused(void **state)
{
	static const char *bad[] = {
		"",
		"[]",
		"{}",
		"{\"format\":\"x\",\"algorithm\":\"Ed25519\",\"key_id\":\"sha256:" "0000000000000000000000000000000000000000000000000000000000000000" "\",\"manifest_sha256\":\"" "0000000000000000000000000000000000000000000000000000000000000000" "\",\"signature\":\"AAAA\"}",
		"{\"format\":\"sealpod-manifest-signature/1\",\"algorithm\":\"ES256\",\"key_id\":\"sha256:" "0000000000000000000000000000000000000000000000000000000000000000" "\",\"manifest_sha256\":\"" "0000000000000000000000000000000000000000000000000000000000000000" "\",\"signature\":\"AAAA\"}",
		"{\"format\":\"sealpod-manifest-signature/1\",\"algorithm\":\"Ed25519\",\"key_id\":\"md5:00\",\"manifest_sha256\":\"" "0000000000000000000000000000000000000000000000000000000000000000" "\",\"signature\":\"AAAA\"}",
		"{\"format\":\"sealpod-manifest-signature/1\",\"algorithm\":\"Ed25519\",\"key_id\":\"sha256:" "000000000000000000000000000000000000000000000000000000000000000g" "\",\"manifest_sha256\":\"" "0000000000000000000000000000000000000000000000000000000000000000" "\",\"signature\":\"AAAA\"}",
		"{\"format\":\"sealpod-manifest-signature/1\",\"algorithm\":\"Ed25519\",\"key_id\":\"sha256:" "0000000000000000000000000000000000000000000000000000000000000000" "\",\"manifest_sha256\":\"00\",\"signature\":\"AAAA\"}",
		"{\"format\":\"sealpod-manifest-signature/1\",\"algorithm\":\"Ed25519\",\"key_id\":\"sha256:" "0000000000000000000000000000000000000000000000000000000000000000" "\",\"manifest_sha256\":\"" "0000000000000000000000000000000000000000000000000000000000000000" "\",\"signature\":\"AAAA\"}",
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
		sp_release_sig s;
		sp_err *err = NULL;
		if (sp_release_sig_parse(&s, bad[i], strlen(bad[i]), &err) >= 0)
			fail_msg("case %zu accepted", i);
		sp_err_free(err);
	}
}

static void test_measurements(void **state)
{
	json_t *m = NULL;
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(sp_json_parse(&m, MANIFEST, strlen(MANIFEST), "m", &err), 0);
	uint8_t(*v)[48] = NULL;
	size_t n = 0;
	assert_int_equal(sp_release_measurements(&v, &n, m, false, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0][0], 0xaa);
	free(v);
	assert_int_equal(sp_release_measurements(&v, &n, m, true, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0][47], 0x30);
	free(v);
	/* Absent: none listed; malformed: refused. */
	json_object_del(json_object_get(m, "snp"), "launch_measurement");
	assert_int_equal(sp_release_measurements(&v, &n, m, false, &err), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	json_object_set_new(json_object_get(m, "snp"), "sim_launch_measurement",
			    json_string("zz"));
	assert_int_equal(sp_release_measurements(&v, &n, m, true, &err), SP_ERR_PARSE);
	sp_err_clear(&err);
	json_object_set_new(m, "snp", json_integer(1));
	assert_int_equal(sp_release_measurements(&v, &n, m, true, &err), SP_ERR_PARSE);
	sp_err_clear(&err);
	json_decref(m);
	/* Keys other than Ed25519 are refused. */
	EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_PUBKEY(b, p);
	char *d;
	long dl = BIO_get_mem_data(b, &d);
	sp_release_key *k = NULL;
	assert_int_equal(sp_release_key_load(&k, (uint8_t *)d, (size_t)dl, &err),
			 SP_ERR_UNSUPPORTED);
	sp_err_clear(&err);
	BIO_free(b);
	EVP_PKEY_free(p);
	assert_int_equal(sp_release_key_load(&k, (const uint8_t *)"junk", 4, &err), SP_ERR_PARSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_sig_file_refused),
		cmocka_unit_test(test_measurements),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
