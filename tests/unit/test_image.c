/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "image/http.h"
#include "image/image-internal.h"
#include <sys/socket.h>

#include "sealpod/dns.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/image.h"

static void check_ref(const char *in, const char *reg, const char *repo, const char *tag,
		      const char *digest)
{
	sp_image_ref *r = NULL;
	_cleanup_err_ sp_err *err = NULL;
	if (sp_image_ref_parse(&r, in, &err) != 0)
		fail_msg("%s: %s", in, sp_err_msg(err));
	assert_string_equal(r->registry, reg);
	assert_string_equal(r->repository, repo);
	if (tag)
		assert_string_equal(r->tag, tag);
	else
		assert_null(r->tag);
	if (digest)
		assert_string_equal(r->digest, digest);
	else
		assert_null(r->digest);
	sp_image_ref_free(r);
}

static void test_ref_defaults(void **state)
{
	const char *d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	check_ref("busybox", "docker.io", "library/busybox", "latest", NULL);
	check_ref("busybox:1.36", "docker.io", "library/busybox", "1.36", NULL);
	check_ref("user/app", "docker.io", "user/app", "latest", NULL);
	check_ref("index.docker.io/user/app:x", "docker.io", "user/app", "x", NULL);
	check_ref("localhost/app", "localhost", "app", "latest", NULL);
	check_ref("127.0.0.1:5000/a/b:t", "127.0.0.1:5000", "a/b", "t", NULL);
	check_ref("ghcr.io/o/r__x.y-z", "ghcr.io", "o/r__x.y-z", "latest", NULL);
	char *s = sp_xasprintf("busybox@%s", d);
	check_ref(s, "docker.io", "library/busybox", NULL, d);
	free(s);
	s = sp_xasprintf("q.io:443/a:v@%s", d);
	check_ref(s, "q.io:443", "a", "v", d);
	free(s);
	sp_image_ref *r = NULL;
	assert_int_equal(sp_image_ref_parse(&r, "busybox", NULL), 0);
	char *full = sp_image_ref_str(r);
	assert_string_equal(full, "docker.io/library/busybox:latest");
	free(full);
	sp_image_ref_free(r);
}

static void test_ref_strict(void **state)
{
	static const char *const bad[] = {
		"", "Busybox", "busybox:", "busybox@sha256:abc", "busybox@md5:00",
		"a//b", "-a", "a-", "a_-b", "a___b", "a..b", "/a", "a/", "reg.io:0/a",
		"reg.io:99999/a", "a b", "a:t:t", "busybox@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
		"a:" "0123456789012345678901234567890123456789012345678901234567890123456789"
		"01234567890123456789012345678901234567890123456789012345678901234567890",
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
		sp_image_ref *r = NULL;
		_cleanup_err_ sp_err *err = NULL;
		if (sp_image_ref_parse(&r, bad[i], &err) == 0)
			fail_msg("accepted bad reference `%s`", bad[i]);
		assert_int_equal(err->code, SP_ERR_PARSE);
	}
}

static void test_clean_path(void **state)
{
	static const char *const ok[][2] = {
		{"./a/b", "a/b"}, {"a//b/./c/", "a/b/c"}, {"./", ""}, {".", ""}, {"a/.../b", "a/.../b"},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(ok); i++) {
		char *c = img_clean_path(ok[i][0], NULL);
		assert_non_null(c);
		assert_string_equal(c, ok[i][1]);
		free(c);
	}
	static const char *const bad[] = {"/etc/passwd", "../x", "a/../../x", "a/..", "//x"};
	for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
		_cleanup_err_ sp_err *err = NULL;
		assert_null(img_clean_path(bad[i], &err));
		assert_int_equal(err->code, SP_ERR_DENIED);
	}
}

static uint8_t *read_corpus(const char *name, size_t *len)
{
	_cleanup_free_ char *p = sp_xasprintf("%s/fuzz/corpus/%s", SP_SOURCE_ROOT, name);
	uint8_t *d = NULL;
	assert_int_equal(sp_read_file(&d, len, p, 1 << 20, NULL), 0);
	return d;
}

static void test_tar_pax_and_gnu(void **state)
{
	size_t len;
	_cleanup_free_ uint8_t *d = read_corpus("image_tar/pax-xattr", &len);
	img_stream *in = img_mem_stream(d, len);
	img_tar *t = img_tar_new(in);
	const struct img_tar_entry *e;
	assert_int_equal(img_tar_next(t, &e, NULL), 1);
	assert_string_equal(e->path, "bin/ping");
	assert_int_equal(e->size, 3);
	assert_int_equal(e->nxattrs, 2);
	bool cap = false;
	for (size_t i = 0; i < e->nxattrs; i++)
		if (!strcmp(e->xattrs[i].name, "security.capability")) {
			cap = true;
			assert_int_equal(e->xattrs[i].len, 4);
			assert_memory_equal(e->xattrs[i].value, "\x01\x00\x00\x02", 4);
		}
	assert_true(cap);
	assert_int_equal(img_tar_next(t, &e, NULL), 1); /* skips unread data */
	assert_int_equal(strlen(e->path), 202);
	assert_int_equal(img_tar_next(t, &e, NULL), 0);
	img_tar_free(t);
	img_stream_close(in);

	_cleanup_free_ uint8_t *g = read_corpus("image_tar/gnu-long", &len);
	in = img_mem_stream(g, len);
	t = img_tar_new(in);
	assert_int_equal(img_tar_next(t, &e, NULL), 1);
	assert_int_equal(strlen(e->path), 152);
	char buf[8];
	assert_int_equal(img_tar_read(t, buf, sizeof(buf), NULL), 2);
	assert_memory_equal(buf, "hi", 2);
	assert_int_equal(img_tar_next(t, &e, NULL), 1);
	assert_int_equal(e->type, '2');
	assert_int_equal(strlen(e->linkname), 120);
	img_tar_free(t);
	img_stream_close(in);
}

static void test_tar_rejects(void **state)
{
	static const char *const names[] = {"image_tar/bad-checksum", "image_tar/truncated"};
	for (size_t i = 0; i < SP_ARRAY_LEN(names); i++) {
		size_t len;
		_cleanup_free_ uint8_t *d = read_corpus(names[i], &len);
		img_stream *in = img_mem_stream(d, len);
		img_tar *t = img_tar_new(in);
		const struct img_tar_entry *e;
		_cleanup_err_ sp_err *err = NULL;
		int r;
		char buf[1024];
		while ((r = img_tar_next(t, &e, &err)) > 0)
			while ((r = (int)img_tar_read(t, buf, sizeof(buf), &err)) > 0)
				;
		assert_true(r < 0);
		assert_int_equal(err->code, SP_ERR_PARSE);
		img_tar_free(t);
		img_stream_close(in);
	}
}

static void test_manifest_and_index(void **state)
{
	size_t len;
	_cleanup_free_ uint8_t *m = read_corpus("image_manifest/manifest-docker", &len);
	int kind = 0;
	assert_int_equal(img_manifest_kind(m, len, NULL, &kind, NULL), 0);
	assert_int_equal(kind, IMG_KIND_MANIFEST);
	struct img_manifest man;
	assert_int_equal(img_manifest_parse(&man, m, len, NULL), 0);
	assert_int_equal(man.nlayers, 2);
	const char *algo;
	assert_int_equal(img_layer_compression(man.layers[0].media_type, &algo, NULL), 0);
	assert_string_equal(algo, "gzip");
	img_manifest_clear(&man);
	/* A header that contradicts the body is refused. */
	_cleanup_err_ sp_err *err = NULL;
	assert_true(img_manifest_kind(m, len, IMG_MT_OCI_INDEX, &kind, &err) < 0);

	_cleanup_free_ uint8_t *ix = read_corpus("image_manifest/index-multi", &len);
	struct img_desc d = {0};
	assert_int_equal(img_index_select(&d, ix, len, NULL), 0);
	assert_string_equal(d.digest, "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	img_desc_clear(&d);

	const char *bad = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
			  "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
			  "\"digest\":\"sha512:00\",\"size\":1},\"layers\":[]}";
	_cleanup_err_ sp_err *e2 = NULL;
	assert_true(img_manifest_parse(&man, (const uint8_t *)bad, strlen(bad), &e2) < 0);
	assert_non_null(strstr(e2->msg, "sha256"));
}

static void test_config_get(void **state)
{
	size_t len;
	_cleanup_free_ uint8_t *c = read_corpus("image_manifest/config", &len);
	sp_image_config *cfg = NULL;
	assert_int_equal(sp_image_config_get(&cfg, (char *)c, NULL), 0);
	assert_string_equal(cfg->entrypoint[0], "/bin/sh");
	assert_string_equal(cfg->cmd[1], "echo hello from busybox");
	assert_string_equal(cfg->env[0], "PATH=/bin");
	assert_string_equal(cfg->working_dir, "/root");
	assert_string_equal(cfg->user, "0:0");
	sp_image_config_free(cfg);
	char **ids = NULL;
	assert_int_equal(img_config_diff_ids(&ids, c, len, NULL), 0);
	assert_non_null(ids[0]);
	sp_strv_freep(&ids);
}

static void test_http_head(void **state)
{
	struct img_http_resp r;
	const char *ok = "HTTP/1.1 307 Temporary Redirect\r\nlocation: https://s3/x\r\nContent-Length: 0\r\n\r\n";
	assert_int_equal(img_http_parse_head(&r, ok, strlen(ok), NULL), 0);
	assert_int_equal(r.status, 307);
	assert_string_equal(r.location, "https://s3/x");
	assert_int_equal(r.content_length, 0);
	img_http_resp_clear(&r);
	static const char *const bad[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/2 200\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
		_cleanup_err_ sp_err *err = NULL;
		if (img_http_parse_head(&r, bad[i], strlen(bad[i]), &err) == 0)
			fail_msg("accepted `%s`", bad[i]);
	}
	struct img_url u;
	assert_int_equal(img_url_parse(&u, "http://[::1]:5000", NULL), 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.port, "5000");
	assert_string_equal(u.path, "/");
	img_url_clear(&u);
	assert_true(img_url_parse(&u, "ftp://x", NULL) < 0);
	assert_true(img_url_parse(&u, "http://user@x/", NULL) < 0);
}

static void test_registry_insecure_refused(void **state)
{
	sp_image_store *s = NULL;
	_cleanup_err_ sp_err *err = NULL;
	assert_true(sp_image_store_open(&s, "registry:http://127.0.0.1:5000", NULL, &err) < 0);
	assert_int_equal(err->code, SP_ERR_DENIED);
	struct sp_image_store_opts o = {.version = SP_IMAGE_STORE_OPTS_VERSION, .insecure_http = true};
	sp_err_clear(&err);
	assert_true(sp_image_store_open(&s, "registry:http://192.168.1.1:5000", &o, &err) < 0);
	assert_int_equal(sp_image_store_open(&s, "registry:http://10.0.2.2:5000", &o, NULL), 0);
	sp_image_store_close(s);
	sp_err_clear(&err);
	assert_true(sp_image_store_open(&s, "bogus:x", NULL, &err) < 0);
}

static void check_url(const char *in, const char *want)
{
	sp_image_ref *r = NULL;
	assert_int_equal(sp_image_ref_parse(&r, in, NULL), 0);
	_cleanup_free_ char *u = sp_image_registry_url(r);
	assert_string_equal(u, want);
	sp_image_ref_free(r);
}

static void test_registry_url(void **state)
{
	check_url("busybox", "https://registry-1.docker.io");
	check_url("docker.io/library/nginx:1.25", "https://registry-1.docker.io");
	check_url("ghcr.io/org/app:1", "https://ghcr.io");
	check_url("registry.example.com:8443/a/b:1", "https://registry.example.com:8443");
	check_url("127.0.0.1:5555/busybox:1", "http://127.0.0.1:5555");
	check_url("127.1.2.3:5555/busybox:1", "http://127.0.0.1:5555");
	check_url("localhost:5000/x", "http://127.0.0.1:5000");
	check_url("localhost/x", "http://127.0.0.1");
	/* Not loopback: https. */
	check_url("127.example.com/x", "https://127.example.com");
	check_url("128.0.0.1:5000/x", "https://128.0.0.1:5000");
	check_url("localhost.example.com/x", "https://localhost.example.com");
}

static void check_auth(const char *file, const char *in, const char *user, const char *pass)
{
	sp_image_ref *r = NULL;
	assert_int_equal(sp_image_ref_parse(&r, in, NULL), 0);
	_cleanup_free_ char *u = NULL, *p = NULL;
	_cleanup_err_ sp_err *err = NULL;
	if (sp_image_auth_parse((const uint8_t *)file, strlen(file), r, &u, &p, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	if (user) {
		assert_non_null(u);
		assert_string_equal(u, user);
		assert_string_equal(p, pass);
	} else {
		assert_null(u);
	}
	sp_image_ref_free(r);
}

static void test_auth_file(void **state)
{
	/* u:p, x:y, user:pass, a:b:c */
	const char *f = "{\"auths\":{\"quay.io/org\":{\"auth\":\"dTpw\"},"
			"\"quay.io\":{\"auth\":\"eDp5\"},"
			"\"https://index.docker.io/v1/\":{\"auth\":\"dXNlcjpwYXNz\"},"
			"\"127.0.0.1:5000\":{\"auth\":\"YTpiOmM=\"}}}";
	check_auth(f, "quay.io/org/app:1", "u", "p");     /* the longest prefix */
	check_auth(f, "quay.io/organic/app:1", "x", "y"); /* components, not bytes */
	check_auth(f, "quay.io/other:1", "x", "y");
	check_auth(f, "busybox", "user", "pass");         /* docker's legacy key */
	check_auth(f, "127.0.0.1:5000/a", "a", "b:c");    /* the first colon splits */
	check_auth(f, "127.0.0.1:5001/a", NULL, NULL);    /* another port: nothing */
	check_auth(f, "ghcr.io/org/app", NULL, NULL);
	check_auth("{}", "busybox", NULL, NULL);
	sp_image_ref *r = NULL;
	assert_int_equal(sp_image_ref_parse(&r, "quay.io/x", NULL), 0);
	char *u = NULL, *p = NULL;
	_cleanup_err_ sp_err *err = NULL;
	const char *helper = "{\"auths\":{\"quay.io\":{}}}";
	assert_true(sp_image_auth_parse((const uint8_t *)helper, strlen(helper), r, &u, &p, &err) < 0);
	assert_non_null(strstr(err->msg, "quay.io"));
	sp_err_clear(&err);
	const char *bad = "{\"auths\":{\"quay.io\":{\"auth\":\"bm9jb2xvbg==\"}}}";
	assert_true(sp_image_auth_parse((const uint8_t *)bad, strlen(bad), r, &u, &p, &err) < 0);
	assert_null(u);
	sp_image_ref_free(r);
}

static int dns_parse(const char *file, uint16_t type, sp_dns_addr *out, size_t *n, sp_err **err)
{
	_cleanup_free_ char *path = sp_xasprintf("dns/%s", file);
	size_t len;
	_cleanup_free_ uint8_t *m = read_corpus(path, &len);
	return sp_dns_response_parse(m, len, 0x1234, "Registry.Example.com.", type, out, 4, n, err);
}

static void test_dns(void **state)
{
	sp_dns_addr a[4];
	size_t n;
	assert_int_equal(dns_parse("a", SP_DNS_A, a, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].family, AF_INET);
	assert_memory_equal(a[0].addr, "\x0a\x00\x02\x02", 4);
	/* The A record of the CNAME's target counts. */
	assert_int_equal(dns_parse("cname", SP_DNS_A, a, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(a[0].addr, "\xc0\x00\x02\x07", 4);
	assert_int_equal(dns_parse("aaaa", SP_DNS_AAAA, a, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].family, AF_INET6);
	/* An A answer is no AAAA answer. */
	assert_int_equal(dns_parse("a", SP_DNS_AAAA, a, &n, NULL), SP_ERR_PROTOCOL);
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(dns_parse("nxdomain", SP_DNS_A, a, &n, &err), SP_ERR_NOT_FOUND);
	assert_non_null(strstr(err->msg, "registry.example.com"));
	sp_err_clear(&err);
	assert_true(dns_parse("tc", SP_DNS_A, a, &n, &err) < 0);
	assert_non_null(strstr(err->msg, "truncated"));
	sp_err_clear(&err);
	assert_int_equal(dns_parse("loop", SP_DNS_A, a, &n, &err), SP_ERR_PARSE);
	/* Another id: not our answer. */
	size_t len;
	_cleanup_free_ uint8_t *m = read_corpus("dns/a", &len);
	assert_true(sp_dns_response_parse(m, len, 0x1235, "registry.example.com", SP_DNS_A, a, 4,
					  &n, NULL) < 0);
	/* Another name. */
	assert_true(sp_dns_response_parse(m, len, 0x1234, "other.example.com", SP_DNS_A, a, 4,
					  &n, NULL) < 0);
	/* Queries: names only. */
	uint8_t q[300];
	assert_int_equal(sp_dns_query_build(q, sizeof(q), 1, "a.b", SP_DNS_A, NULL), 12 + 5 + 4);
	assert_true(sp_dns_query_build(q, sizeof(q), 1, "a..b", SP_DNS_A, NULL) < 0);
	assert_true(sp_dns_query_build(q, sizeof(q), 1, "a b", SP_DNS_A, NULL) < 0);
	/* resolv.conf */
	sp_dns_conf c;
	const char *rc = "# x\nsearch a\nnameserver 10.0.2.3\nnameserver ::1\nnameserver 1.1.1.1\n"
			 "nameserver 8.8.8.8\noptions timeout:99 attempts:0\n";
	assert_int_equal(sp_dns_conf_parse(&c, rc, strlen(rc), NULL), 0);
	assert_int_equal(c.nservers, 3);
	assert_int_equal(c.servers[1].family, AF_INET6);
	assert_int_equal(c.timeout_s, 30);
	assert_int_equal(c.attempts, 1);
	assert_true(sp_dns_conf_parse(&c, "search a\n", 9, NULL) < 0);
	assert_true(sp_dns_conf_parse(&c, "nameserver host\n", 16, NULL) < 0);
}

static char *put_blob(const char *root, const void *data, size_t len)
{
	char *digest = sp_sha256_digest_str(data, len);
	_cleanup_free_ char *p = sp_xasprintf("%s/blobs/sha256/%s", root, digest + 7);
	assert_int_equal(sp_write_file_atomic(p, data, len, 0444, NULL), 0);
	return digest;
}

/* Host-pulled images: blobs as containerd's content store holds them,
 * appended to a growing disk that the guest's tar store reads. */
static void test_image_disk(void **state)
{
	_cleanup_free_ char *dir = NULL;
	assert_int_equal(sp_mkdtemp(&dir, "sp-disk-test", NULL), 0);
	_cleanup_free_ char *root = sp_xasprintf("%s/content", dir);
	_cleanup_free_ char *blobs = sp_xasprintf("%s/blobs/sha256", root);
	assert_int_equal(sp_mkdir_p(blobs, 0700, NULL), 0);
	/* An uncompressed layer: one file. */
	_cleanup_free_ char *tarp = sp_xasprintf("%s/layer.tar", dir);
	int fd = open(tarp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(img_tar_write_header(fd, "hello", '0', 3, 0644, NULL), 0);
	assert_int_equal(sp_write_all(fd, "hi\n", 3), 0);
	assert_int_equal(img_tar_write_pad(fd, 3, NULL), 0);
	assert_int_equal(img_tar_write_end(fd, NULL), 0);
	close(fd);
	_cleanup_free_ uint8_t *layer = NULL;
	size_t llen;
	assert_int_equal(sp_read_file(&layer, &llen, tarp, 1 << 20, NULL), 0);
	_cleanup_free_ char *ldig = put_blob(root, layer, llen);
	_cleanup_free_ char *cfg = sp_xasprintf(
		"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
		ldig);
	_cleanup_free_ char *cdig = put_blob(root, cfg, strlen(cfg));
	_cleanup_free_ char *man = sp_xasprintf(
		"{\"schemaVersion\":2,\"mediaType\":\"" IMG_MT_OCI_MANIFEST "\","
		"\"config\":{\"mediaType\":\"" IMG_MT_OCI_CONFIG "\",\"digest\":\"%s\",\"size\":%zu},"
		"\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\",\"size\":%zu}]}",
		cdig, strlen(cfg), ldig, llen);
	_cleanup_free_ char *mdig = put_blob(root, man, strlen(man));

	_cleanup_free_ char *dpath = sp_xasprintf("%s/pod.images", dir);
	sp_image_disk *d = NULL;
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(sp_image_disk_create(&d, dpath, 64u << 20, &err), 0);
	/* An empty disk is a valid (empty) OCI layout already. */
	_cleanup_free_ char *spec = sp_xasprintf("tar:%s", dpath);
	sp_image_store *st = NULL;
	assert_int_equal(sp_image_store_open(&st, spec, NULL, NULL), 0);
	sp_image_store_close(st);
	if (sp_image_disk_add_content(d, root, "test/app", mdig, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	/* Twice: nothing is appended again (duplicates would be refused). */
	assert_int_equal(sp_image_disk_add_content(d, root, "test/app", mdig, NULL), 0);
	assert_int_equal(sp_image_store_open(&st, spec, NULL, NULL), 0);
	_cleanup_free_ char *ref = sp_xasprintf("example.com/test/app@%s", mdig);
	_cleanup_free_ char *dest = sp_xasprintf("%s/rootfs", dir);
	struct sp_image_limits lim = {.version = SP_IMAGE_LIMITS_VERSION, .chown_mode = -1};
	if (sp_image_pull(st, ref, mdig, dest, &lim, NULL, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	sp_image_store_close(st);
	_cleanup_free_ char *hello = sp_xasprintf("%s/hello", dest);
	_cleanup_free_ uint8_t *got = NULL;
	size_t glen;
	assert_int_equal(sp_read_file(&got, &glen, hello, 64, NULL), 0);
	assert_int_equal(glen, 3);
	/* A manifest containerd does not hold: a clear not-found. */
	const char *none = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
	assert_int_equal(sp_image_disk_add_content(d, root, "test/none", none, &err), SP_ERR_NOT_FOUND);
	assert_non_null(strstr(err->msg, "content store"));
	assert_non_null(strstr(err->msg, "test/none"));
	/* A missing layer (discarded after unpacking): named. */
	_cleanup_free_ char *lp = sp_xasprintf("%s/%s", blobs, ldig + 7);
	assert_int_equal(unlink(lp), 0);
	_cleanup_free_ char *man2 = sp_xasprintf("%s ", man); /* another digest */
	_cleanup_free_ char *m2 = put_blob(root, man2, strlen(man2));
	sp_err_clear(&err);
	assert_int_equal(sp_image_disk_add_content(d, root, "test/app2", m2, &err), SP_ERR_NOT_FOUND);
	assert_non_null(strstr(err->msg, ldig));
	sp_image_disk_free(d);
	assert_int_equal(access(dpath, F_OK), -1); /* removed */
	assert_int_equal(sp_rm_rf(dir, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_defaults),
		cmocka_unit_test(test_ref_strict),
		cmocka_unit_test(test_clean_path),
		cmocka_unit_test(test_tar_pax_and_gnu),
		cmocka_unit_test(test_tar_rejects),
		cmocka_unit_test(test_manifest_and_index),
		cmocka_unit_test(test_config_get),
		cmocka_unit_test(test_http_head),
		cmocka_unit_test(test_registry_insecure_refused),
		cmocka_unit_test(test_image_disk),
		cmocka_unit_test(test_registry_url),
		cmocka_unit_test(test_auth_file),
		cmocka_unit_test(test_dns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
