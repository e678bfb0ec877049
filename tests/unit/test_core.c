/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>

#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/err.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"

static void test_error_first_wins_and_wrap(void **state)
{
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(sp_error(&err, SP_ERR_PARSE, "bad %s", "thing"), SP_ERR_PARSE);
	assert_int_equal(sp_error(&err, SP_ERR_LIMIT, "second"), SP_ERR_LIMIT);
	assert_string_equal(err->msg, "bad thing");
	assert_int_equal(sp_error_wrap(&err, "reading `%s`", "x.json"), SP_ERR_PARSE);
	assert_string_equal(err->msg, "reading `x.json`: bad thing");
	assert_string_equal(sp_err_code_name(err->code), "parse");
	assert_string_equal(sp_err_code_name(SP_ERR_APPRAISAL), "appraisal");
	assert_string_equal(sp_err_code_name(-99), "unknown");
	/* A NULL err pointer only returns the code. */
	assert_int_equal(sp_error(NULL, SP_ERR_DENIED, "x"), SP_ERR_DENIED);
}

static void test_error_sys(void **state)
{
	_cleanup_err_ sp_err *err = NULL;
	sp_error_sys(&err, ENOENT, "open `%s`", "/nope");
	assert_int_equal(err->code, SP_ERR_SYSTEM);
	assert_int_equal(err->sys_errno, ENOENT);
	assert_non_null(strstr(err->msg, "open `/nope`: No such file"));
}

static void test_reader_bounds(void **state)
{
	const uint8_t data[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	sp_reader r;
	uint32_t v32;
	uint64_t v64;
	uint16_t v16;
	sp_reader_init(&r, data, sizeof(data));
	assert_true(sp_reader_u32le(&r, &v32));
	assert_int_equal(v32, 0x04030201);
	assert_true(sp_reader_u32be(&r, &v32));
	assert_int_equal(v32, 0x05060708);
	assert_int_equal(sp_reader_left(&r), 1);
	assert_false(sp_reader_u16le(&r, &v16));
	assert_false(sp_reader_ok(&r));
	/* A failed reader stays failed even for requests that would fit. */
	uint8_t b;
	assert_false(sp_reader_u8(&r, &b));
	sp_reader_init(&r, data, sizeof(data));
	assert_true(sp_reader_seek(&r, 1));
	assert_true(sp_reader_u64le(&r, &v64));
	assert_true(v64 == 0x0908070605040302ull);
	assert_false(sp_reader_seek(&r, 10));
	/* Huge lengths never wrap around. */
	sp_reader_init(&r, data, sizeof(data));
	assert_true(sp_reader_skip(&r, 4));
	assert_false(sp_reader_skip(&r, SIZE_MAX));
	sp_reader sub;
	sp_reader_init(&r, data, sizeof(data));
	assert_true(sp_reader_sub(&r, &sub, 3));
	assert_int_equal(sp_reader_left(&sub), 3);
	assert_int_equal(sp_reader_left(&r), 6);
}

static void test_buf(void **state)
{
	_cleanup_buf_ sp_buf b = SP_BUF_INIT;
	sp_buf_put_u32le(&b, 0x11223344);
	sp_buf_put_u32be(&b, 0x11223344);
	sp_buf_printf(&b, "%d-%s", 42, "x");
	for (int i = 0; i < 1000; i++)
		sp_buf_put_u8(&b, (uint8_t)i);
	assert_int_equal(b.len, 8 + 4 + 1000);
	assert_memory_equal(b.data, "\x44\x33\x22\x11\x11\x22\x33\x44" "42-x", 12);
	assert_int_equal(b.data[12 + 999], (uint8_t)999);
}

static void test_hex(void **state)
{
	char out[9];
	uint8_t bin[4];
	_cleanup_err_ sp_err *err = NULL;
	sp_hex_encode(out, "\xde\xad\xbe\xef", 4);
	assert_string_equal(out, "deadbeef");
	assert_int_equal(sp_hex_decode(bin, 4, "DEADbeef", &err), 0);
	assert_memory_equal(bin, "\xde\xad\xbe\xef", 4);
	assert_true(sp_hex_decode(bin, 4, "deadbee", &err) < 0);
	assert_non_null(strstr(err->msg, "7 digits, expected 8"));
	sp_err_clear(&err);
	assert_true(sp_hex_decode(bin, 4, "deadbeeg", &err) < 0);
	assert_non_null(strstr(err->msg, "position 7"));
}

static void test_base64(void **state)
{
	/* RFC 4648 test vectors. */
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++) {
		_cleanup_free_ char *e = sp_base64_encode(plain[i], strlen(plain[i]), SP_B64_STD);
		assert_string_equal(e, enc[i]);
		_cleanup_free_ uint8_t *d = NULL;
		size_t n;
		assert_int_equal(sp_base64_decode(&d, &n, e, strlen(e), SP_B64_STD, NULL), 0);
		assert_int_equal(n, strlen(plain[i]));
		assert_memory_equal(d, plain[i], n);
	}
	_cleanup_free_ char *u = sp_base64_encode("\xfb\xff", 2, SP_B64_URL);
	assert_string_equal(u, "-_8");
	_cleanup_err_ sp_err *err = NULL;
	uint8_t *d = NULL;
	size_t n;
	assert_true(sp_base64_decode(&d, &n, "Zm\n9", 4, SP_B64_STD, &err) < 0);
	assert_non_null(strstr(err->msg, "invalid character at position 2"));
	sp_err_clear(&err);
	assert_true(sp_base64_decode(&d, &n, "Zh==", 4, SP_B64_STD, &err) < 0);
	sp_err_clear(&err);
	assert_true(sp_base64_decode(&d, &n, "Z", 1, SP_B64_STD, &err) < 0);
}

static void test_hashes(void **state)
{
	uint8_t d[48];
	char hex[97];
	sp_sha256(d, "abc", 3);
	sp_hex_encode(hex, d, 32);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sp_sha384(d, "abc", 3);
	sp_hex_encode(hex, d, 48);
	assert_string_equal(hex, "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
				 "8086072ba1e7cc2358baeca134c825a7");
	/* RFC 4231 case 2. */
	sp_hmac_sha256(d, "Jefe", 4, "what do ya want for nothing?", 28);
	sp_hex_encode(hex, d, 32);
	assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	_cleanup_free_ char *ds = sp_sha256_digest_str("", 0);
	assert_string_equal(ds, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_json(void **state)
{
	_cleanup_json_ json_t *j = NULL;
	_cleanup_err_ sp_err *err = NULL;
	const char *doc = "{\"b\":1,\"a\":{\"s\":\"x\",\"v\":[\"p\",\"q\"]}}";
	assert_int_equal(sp_json_parse(&j, doc, strlen(doc), "doc", &err), 0);
	_cleanup_free_ char *c = sp_json_dump_canonical(j);
	assert_string_equal(c, "{\"a\":{\"s\":\"x\",\"v\":[\"p\",\"q\"]},\"b\":1}");
	json_t *a = NULL;
	assert_int_equal(sp_json_get_object(j, "a", true, &a, "doc", &err), 0);
	const char *s = NULL;
	assert_int_equal(sp_json_get_string(a, "s", true, &s, "doc.a", &err), 0);
	assert_string_equal(s, "x");
	_cleanup_strv_ char **v = NULL;
	assert_int_equal(sp_json_get_strv(a, "v", true, &v, "doc.a", &err), 0);
	assert_string_equal(v[1], "q");
	assert_null(v[2]);
	int64_t i = 0;
	assert_true(sp_json_get_int(a, "s", true, &i, "doc.a", &err) < 0);
	assert_string_equal(err->msg, "doc.a.s: expected an integer, got a string");
	sp_err_clear(&err);
	assert_true(sp_json_get_string(a, "missing", true, &s, "doc.a", &err) < 0);
	assert_string_equal(err->msg, "doc.a.missing: missing");
	sp_err_clear(&err);
	assert_int_equal(sp_json_get_string(a, "missing", false, &s, "doc.a", &err), 0);
	json_t *dup = NULL;
	assert_true(sp_json_parse(&dup, "{\"a\":1,\"a\":2}", 13, "dup", &err) < 0);
	assert_int_equal(err->code, SP_ERR_PARSE);
}

static void test_files(void **state)
{
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_free_ char *dir = NULL;
	assert_int_equal(sp_mkdtemp(&dir, "sp-unit", &err), 0);
	_cleanup_free_ char *deep = sp_xasprintf("%s/a/b/c", dir);
	assert_int_equal(sp_mkdir_p(deep, 0755, &err), 0);
	_cleanup_free_ char *f = sp_xasprintf("%s/a/file", dir);
	assert_int_equal(sp_write_file_atomic(f, "hello", 5, 0600, &err), 0);
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	assert_int_equal(sp_read_file(&data, &len, f, 100, &err), 0);
	assert_int_equal(len, 5);
	assert_string_equal((char *)data, "hello");
	uint8_t *tmp = NULL;
	assert_true(sp_read_file(&tmp, &len, f, 4, &err) < 0);
	assert_int_equal(err->code, SP_ERR_LIMIT);
	sp_err_clear(&err);
	/* A symlink to outside is removed, not followed. */
	_cleanup_free_ char *outside = sp_xasprintf("%s-outside", dir);
	assert_int_equal(sp_write_file_atomic(outside, "keep", 4, 0600, &err), 0);
	_cleanup_free_ char *link = sp_xasprintf("%s/a/b/link", dir);
	assert_int_equal(symlink(outside, link), 0);
	assert_int_equal(sp_rm_rf(dir, &err), 0);
	struct stat st;
	assert_int_equal(stat(dir, &st), -1);
	assert_int_equal(stat(outside, &st), 0);
	unlink(outside);
}

static void test_run(void **state)
{
	_cleanup_err_ sp_err *err = NULL;
	char *argv[] = {"sh", "-c", "echo out; exit 0", NULL};
	_cleanup_free_ char *out = NULL;
	assert_int_equal(sp_run(argv, &out, 100, &err), 0);
	assert_string_equal(out, "out\n");
	char *fail[] = {"sh", "-c", "exit 3", NULL};
	assert_true(sp_run(fail, NULL, 0, &err) < 0);
	assert_string_equal(err->msg, "`sh` exited with status 3");
	sp_err_clear(&err);
	char *missing[] = {"/nonexistent/program", NULL};
	assert_true(sp_run(missing, NULL, 0, &err) < 0);
	assert_int_equal(err->code, SP_ERR_NOT_FOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_first_wins_and_wrap),
		cmocka_unit_test(test_error_sys),
		cmocka_unit_test(test_reader_bounds),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_hashes),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
