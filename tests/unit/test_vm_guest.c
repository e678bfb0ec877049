/* SPDX-License-Identifier: Apache-2.0 */
/* The guest image builder: newc cpio bytes, deterministic compression,
 * kernel release and module resolution, and a whole build (twice, to the
 * same bytes) from a synthetic kernel and modules tree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>
#include <lz4.h>
#include <zlib.h>
#include <zstd.h>

#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/guest.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"

static void test_cpio_layout(void **state)
{
	sp_cpio *c = sp_cpio_new(1234);
	sp_cpio_add_dir(c, "/dev", 0755);
	sp_cpio_add_chardev(c, "/dev/console", 0600, 5, 1);
	sp_cpio_add_file(c, "/init", 0755, "hello", 5);
	sp_cpio_add_symlink(c, "/sbin/init", "/init");
	size_t len;
	uint8_t *a = sp_cpio_finish(c, &len);
	sp_cpio_free(c);
	assert_int_equal(len % 512, 0);
	/* First header: ino 1, dir 0755, uid/gid 0, nlink 2, mtime 0x4d2,
	 * name "dev" (4 bytes with NUL), padded to a multiple of 4. */
	const char *h = "070701" "00000001" "000041ED" "00000000" "00000000" "00000002"
			"000004D2" "00000000" "00000000" "00000000" "00000000" "00000000"
			"00000004" "00000000";
	assert_memory_equal(a, h, 110);
	assert_memory_equal(a + 110, "dev\0", 4);
	/* The console: a character device 5:1. */
	const uint8_t *p = a + 116;
	assert_memory_equal(p, "070701", 6);
	assert_memory_equal(p + 6 + 8, "00002180", 8);      /* S_IFCHR|0600 */
	assert_memory_equal(p + 6 + 9 * 8, "00000005", 8);  /* rdevmajor */
	assert_memory_equal(p + 6 + 10 * 8, "00000001", 8); /* rdevminor */
	/* The data follows the name: header (110) + "init\\0" (5), padded to 116. */
	const uint8_t *f = memmem(a, len, "init\0", 5);
	assert_non_null(f);
	assert_memory_equal(f + 6, "hello", 5);
	assert_non_null(memmem(a, len, "TRAILER!!!", 10));
	/* Same input, same bytes. */
	c = sp_cpio_new(1234);
	sp_cpio_add_dir(c, "/dev", 0755);
	sp_cpio_add_chardev(c, "/dev/console", 0600, 5, 1);
	sp_cpio_add_file(c, "/init", 0755, "hello", 5);
	sp_cpio_add_symlink(c, "/sbin/init", "/init");
	size_t len2;
	uint8_t *b = sp_cpio_finish(c, &len2);
	sp_cpio_free(c);
	assert_int_equal(len, len2);
	assert_memory_equal(a, b, len);
	free(a);
	free(b);
}

static void test_compress_deterministic(void **state)
{
	uint8_t in[10000];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 / 13);
	uint8_t *g1, *g2, *z;
	size_t g1n, g2n, zn;
	assert_int_equal(sp_guest_compress(&g1, &g1n, in, sizeof(in), SP_GUEST_COMPRESS_GZIP, NULL), 0);
	assert_int_equal(sp_guest_compress(&g2, &g2n, in, sizeof(in), SP_GUEST_COMPRESS_GZIP, NULL), 0);
	assert_int_equal(g1n, g2n);
	assert_memory_equal(g1, g2, g1n);
	/* gzip header: magic, deflate, no flags (no name), mtime 0, OS unix. */
	static const uint8_t hdr[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0};
	assert_memory_equal(g1, hdr, sizeof(hdr));
	assert_int_equal(g1[9], 3);
	uint8_t out[sizeof(in)];
	z_stream s = {0};
	inflateInit2(&s, 31);
	s.next_in = g1;
	s.avail_in = (uInt)g1n;
	s.next_out = out;
	s.avail_out = sizeof(out);
	assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
	inflateEnd(&s);
	assert_memory_equal(out, in, sizeof(in));
	assert_int_equal(sp_guest_compress(&z, &zn, in, sizeof(in), SP_GUEST_COMPRESS_ZSTD, NULL), 0);
	assert_int_equal(ZSTD_getFrameContentSize(z, zn), sizeof(in));
	assert_int_equal(ZSTD_decompress(out, sizeof(out), z, zn), sizeof(in));
	assert_memory_equal(out, in, sizeof(in));
	free(g1);
	free(g2);
	free(z);
}

/* LZ4 in the kernel's legacy framing: the magic, then a size-prefixed
 * block per 8 MiB of input; the same bytes twice. */
static void test_compress_lz4_legacy(void **state)
{
	size_t n = (8u << 20) + 70000;
	uint8_t *in = sp_xmalloc(n);
	for (size_t i = 0; i < n; i++)
		in[i] = (uint8_t)((i * 2654435761u) >> 29 ^ i / 4096);
	uint8_t *a, *b;
	size_t an, bn;
	assert_int_equal(sp_guest_compress(&a, &an, in, n, SP_GUEST_COMPRESS_LZ4, NULL), 0);
	assert_int_equal(sp_guest_compress(&b, &bn, in, n, SP_GUEST_COMPRESS_LZ4, NULL), 0);
	assert_int_equal(an, bn);
	assert_memory_equal(a, b, an);
	assert_true(an < n);
	assert_int_equal(sp_le32(a), 0x184C2102u);
	uint8_t *out = sp_xmalloc(8u << 20);
	size_t off = 4, done = 0, chunks = 0;
	while (off < an) {
		uint32_t z = sp_le32(a + off);
		off += 4;
		assert_true(off + z <= an);
		int got = LZ4_decompress_safe((const char *)a + off, (char *)out, (int)z, 8 << 20);
		assert_int_equal(got, chunks == 0 ? 8 << 20 : 70000);
		assert_memory_equal(out, in + done, (size_t)got);
		done += (size_t)got;
		off += z;
		chunks++;
	}
	assert_int_equal(chunks, 2);
	assert_int_equal(done, n);
	free(out);
	free(a);
	free(b);
	free(in);
}

/* A buffer that looks like a bzImage setup header with a version. */
static uint8_t *fake_bzimage(size_t *len, const char *version)
{
	*len = 0x1000;
	uint8_t *k = sp_xzalloc(*len);
	memcpy(k + 0x202, "HdrS", 4);
	k[0x206] = 0x0f;
	k[0x207] = 0x02;
	k[0x20e] = 0x00;
	k[0x20f] = 0x02; /* version string at 0x200 + 0x200 */
	memcpy(k + 0x400, version, strlen(version));
	return k;
}

static void test_kernel_release(void **state)
{
	size_t len;
	uint8_t *k = fake_bzimage(&len, "6.1.0-57-cloud-amd64 (debian-kernel@lists) #1 SMP");
	char *rel = NULL;
	assert_int_equal(sp_guest_kernel_release(&rel, k, len, NULL), 0);
	assert_string_equal(rel, "6.1.0-57-cloud-amd64");
	free(rel);
	/* Not a bzImage; version offset past the end. */
	sp_err *err = NULL;
	assert_int_equal(sp_guest_kernel_release(&rel, k, 0x300, &err), SP_ERR_PARSE);
	sp_err_clear(&err);
	k[0x20f] = 0x7f;
	assert_int_equal(sp_guest_kernel_release(&rel, k, len, &err), SP_ERR_PARSE);
	assert_non_null(strstr(sp_err_msg(err), "past the end"));
	sp_err_clear(&err);
	memcpy(k + 0x202, "XXXX", 4);
	assert_int_equal(sp_guest_kernel_release(&rel, k, len, &err), SP_ERR_PARSE);
	assert_non_null(strstr(sp_err_msg(err), "not a bzImage"));
	sp_err_clear(&err);
	free(k);
}

static const char DEP[] =
	"kernel/drivers/virtio/virtio_ring.ko:\n"
	"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko "
	"kernel/drivers/virtio/virtio_ring.ko\n"
	"kernel/fs/overlayfs/overlay.ko:\n";
static const char BUILTIN[] = "kernel/drivers/block/virtio_blk.ko\n";

static void test_resolve_modules(void **state)
{
	const char *names[] = {"virtio-console", "virtio_rng", "virtio_blk", "sev-guest",
			       "overlay"};
	char **paths = NULL, **st = NULL;
	assert_int_equal(sp_guest_resolve_modules(&paths, &st, DEP, strlen(DEP), BUILTIN,
						  strlen(BUILTIN), names, 5, NULL), 0);
	const char *want[] = {"kernel/drivers/virtio/virtio_ring.ko",
			      "kernel/drivers/virtio/virtio.ko",
			      "kernel/drivers/char/virtio_console.ko",
			      "kernel/drivers/char/hw_random/virtio-rng.ko",
			      "kernel/fs/overlayfs/overlay.ko", NULL};
	for (size_t i = 0; want[i]; i++)
		assert_string_equal(paths[i], want[i]);
	assert_null(paths[5]);
	assert_string_equal(st[0], "module");
	assert_string_equal(st[2], "builtin");
	assert_string_equal(st[3], "absent");
	sp_strv_freep(&paths);
	sp_strv_freep(&st);
	/* A dependency with no entry of its own, and a cycle. */
	const char bad[] = "a.ko: b.ko\n";
	sp_err *err = NULL;
	const char *a[] = {"a"};
	assert_int_equal(sp_guest_resolve_modules(&paths, &st, bad, strlen(bad), NULL, 0,
						  a, 1, &err), SP_ERR_PARSE);
	assert_non_null(strstr(sp_err_msg(err), "b.ko"));
	sp_err_clear(&err);
	const char cyc[] = "a.ko: b.ko\nb.ko: a.ko\n";
	assert_int_equal(sp_guest_resolve_modules(&paths, &st, cyc, strlen(cyc), NULL, 0,
						  a, 1, &err), SP_ERR_PARSE);
	assert_non_null(strstr(sp_err_msg(err), "cycle"));
	sp_err_clear(&err);
	const char nocolon[] = "a.ko b.ko\n";
	assert_int_equal(sp_guest_resolve_modules(&paths, &st, nocolon, strlen(nocolon),
						  NULL, 0, a, 1, &err), SP_ERR_PARSE);
	sp_err_clear(&err);
}

static void write_text(const char *path, const void *data, size_t len)
{
	assert_int_equal(sp_write_file_atomic(path, data, len, 0644, NULL), 0);
}

static void test_build_reproducible(void **state)
{
	char *tmp = NULL;
	assert_int_equal(sp_mkdtemp(&tmp, "sp-guest-test", NULL), 0);
	char *moddir = sp_xasprintf("%s/modules", tmp);
	char *kernel = sp_xasprintf("%s/vmlinuz-test", tmp);
	size_t klen;
	uint8_t *k = fake_bzimage(&klen, "9.9.9-test #1");
	write_text(kernel, k, klen);
	free(k);
	const char *files[] = {"kernel/drivers/virtio/virtio_ring.ko",
			       "kernel/drivers/virtio/virtio.ko",
			       "kernel/drivers/char/virtio_console.ko",
			       "kernel/drivers/char/hw_random/virtio-rng.ko",
			       "kernel/fs/overlayfs/overlay.ko"};
	for (size_t i = 0; i < SP_ARRAY_LEN(files); i++) {
		char *p = sp_xasprintf("%s/%s", moddir, files[i]);
		char *d = sp_xstrdup(p);
		*strrchr(d, '/') = 0;
		assert_int_equal(sp_mkdir_p(d, 0755, NULL), 0);
		write_text(p, files[i], strlen(files[i]));
		free(p);
		free(d);
	}
	char *dep = sp_xasprintf("%s/modules.dep", moddir);
	write_text(dep, DEP, strlen(DEP));
	free(dep);
	char *out[2];
	char *sums[2];
	for (int round = 0; round < 2; round++) {
		out[round] = sp_xasprintf("%s/out%d", tmp, round);
		sp_guest_build_opts o;
		sp_guest_build_opts_init(&o);
		o.output_dir = out[round];
		o.agent = "/bin/true";
		o.kernel = kernel;
		o.modules_dir = moddir;
		o.compress = SP_GUEST_COMPRESS_GZIP;
		const char *mods[] = {"virtio_console", "overlay", "no_such_module"};
		o.modules = mods;
		o.n_modules = 3;
		sp_err *err = NULL;
		if (sp_guest_build(&o, &err) < 0)
			fail_msg("%s", sp_err_msg(err));
		char *ip = sp_xasprintf("%s/initrd.img", out[round]);
		uint8_t d[32];
		assert_int_equal(sp_sha256_file(d, ip, NULL), 0);
		sums[round] = sp_xmemdup(d, 32);
		free(ip);
	}
	assert_memory_equal(sums[0], sums[1], 32);
	/* The manifest: modules in order, libraries with their package. */
	char *mp = sp_xasprintf("%s/manifest.json", out[0]);
	json_t *m = NULL;
	assert_int_equal(sp_json_load_file(&m, mp, 1 << 20, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(m, "kernel"),
							      "release")), "9.9.9-test");
	json_t *mods = json_object_get(m, "modules");
	assert_string_equal(json_string_value(json_object_get(json_array_get(mods, 2), "status")),
			    "absent");
	bool agent = false, libc = false, list = false;
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(m, "files"), i, f) {
		const char *p = json_string_value(json_object_get(f, "path"));
		const char *origin = json_string_value(json_object_get(f, "origin"));
		if (!strcmp(p, "/sbin/sealpod-agent"))
			agent = !strcmp(origin, "sealpod");
		if (!strcmp(p, "/lib/x86_64-linux-gnu/libc.so.6"))
			libc = !strncmp(json_string_value(json_object_get(f, "package")),
					"libc6", 5);
		if (!strcmp(p, SP_GUEST_MODULES_LIST))
			list = true;
	}
	assert_true(agent);
	assert_true(libc);
	assert_true(list);
	json_decref(m);
	free(mp);
	/* And the image loads, with its hashes checked. */
	sp_guest_image *img = NULL;
	assert_int_equal(sp_guest_image_load(&img, out[0], NULL), 0);
	assert_non_null(strstr(img->cmdline, "console=ttyS0"));
	sp_guest_image_free(img);
	char *ip = sp_xasprintf("%s/initrd.img", out[0]);
	write_text(ip, "tampered", 8);
	sp_err *err = NULL;
	assert_int_equal(sp_guest_image_load(&img, out[0], &err), SP_ERR_APPRAISAL);
	assert_non_null(strstr(sp_err_msg(err), "sealpod image build"));
	sp_err_clear(&err);
	free(ip);
	for (int r = 0; r < 2; r++) {
		free(out[r]);
		free(sums[r]);
	}
	assert_int_equal(sp_rm_rf(tmp, NULL), 0);
	free(tmp);
	free(moddir);
	free(kernel);
}

static const char *json_str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The default kernel: the builder (here a stand-in script named by
 * $SEALPOD_KERNEL_BUILDER) prints its cache entry; a kernel built without
 * module support gets no modules, its config goes into the image, and the
 * manifest records the source package and config. */
static void test_build_sealpod_kernel(void **state)
{
	char *tmp = NULL;
	assert_int_equal(sp_mkdtemp(&tmp, "sp-guest-kernel", NULL), 0);
	char *entry = sp_xasprintf("%s/cache/6.12.118-1~deb12u1-0123", tmp);
	assert_int_equal(sp_mkdir_p(entry, 0755, NULL), 0);
	size_t klen;
	uint8_t *k = fake_bzimage(&klen, "6.12.118-sealpod (sealpod@sealpod) #1");
	char *p = sp_xasprintf("%s/bzImage", entry);
	write_text(p, k, klen);
	free(p);
	free(k);
	const char cfg[] = "CONFIG_RD_LZ4=y\nCONFIG_RD_ZSTD=y\nCONFIG_HZ=100\n# CONFIG_MODULES is not set\n";
	p = sp_xasprintf("%s/config-6.12.118-sealpod", entry);
	write_text(p, cfg, strlen(cfg));
	free(p);
	const char info[] = "source_package=linux-source-6.12\nsource_version=6.12.118-1~deb12u1\n"
			    "config_sha256=abc\nadditions_sha256=def\noptions_enabled=321\nunknown_key=x\n"
			    "no equals\n";
	p = sp_xasprintf("%s/build-info", entry);
	write_text(p, info, strlen(info));
	free(p);
	char *builder = sp_xasprintf("%s/builder", tmp);
	char *script = sp_xasprintf("#!/bin/sh\necho progress >&2\necho noise\necho %s\n", entry);
	assert_int_equal(sp_write_file_atomic(builder, script, strlen(script), 0755, NULL), 0);
	free(script);
	setenv("SEALPOD_KERNEL_BUILDER", builder, 1);

	sp_guest_build_opts o;
	sp_guest_build_opts_init(&o);
	char *out = sp_xasprintf("%s/out", tmp);
	o.output_dir = out;
	o.agent = "/bin/true";
	sp_err *err = NULL;
	if (sp_guest_build(&o, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	char *mp = sp_xasprintf("%s/manifest.json", out);
	json_t *m = NULL;
	assert_int_equal(sp_json_load_file(&m, mp, 1 << 20, NULL), 0);
	json_t *jk = json_object_get(m, "kernel");
	assert_string_equal(json_str(jk, "origin"), "sealpod");
	assert_string_equal(json_str(jk, "release"), "6.12.118-sealpod");
	assert_string_equal(json_str(jk, "source_package"), "linux-source-6.12");
	assert_string_equal(json_str(jk, "source_version"), "6.12.118-1~deb12u1");
	assert_int_equal(json_integer_value(json_object_get(jk, "options_enabled")), 321);
	assert_string_equal(json_str(jk, "additions_sha256"), "def");
	assert_null(json_object_get(jk, "unknown_key"));
	assert_true(json_is_false(json_object_get(jk, "modules_supported")));
	assert_string_equal(json_str(jk, "config"), SP_GUEST_KERNEL_CONFIG);
	assert_int_equal(json_array_size(json_object_get(m, "modules")), 0);
	/* sealpod's kernel learns the APIC timer's period: 1 GHz / HZ */
	assert_non_null(strstr(json_str(m, "cmdline"), " lapic_timer_period=10000000 "));
	/* auto: the fastest the kernel unpacks */
	assert_non_null(strstr(json_str(json_object_get(m, "initrd"), "compression"), "lz4 legacy"));
	bool list = false;
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(m, "files"), i, f) {
		const char *fp = json_str(f, "path");
		if (!strcmp(fp, SP_GUEST_MODULES_LIST))
			list = json_integer_value(json_object_get(f, "size")) == 0;
		assert_null(strstr(fp, "/lib/modules"));
	}
	assert_true(list);
	json_decref(m);
	free(mp);
	/* The config in the image is the kernel's, byte for byte. */
	p = sp_xasprintf("%s/%s", out, SP_GUEST_KERNEL_CONFIG);
	uint8_t *data = NULL;
	size_t len;
	assert_int_equal(sp_read_file(&data, &len, p, 1 << 20, NULL), 0);
	assert_int_equal(len, strlen(cfg));
	assert_memory_equal(data, cfg, len);
	free(data);
	free(p);

	/* A builder that fails: the error says how to do without it. */
	script = sp_xasprintf("#!/bin/sh\nexit 3\n");
	assert_int_equal(sp_write_file_atomic(builder, script, strlen(script), 0755, NULL), 0);
	free(script);
	assert_true(sp_guest_build(&o, &err) < 0);
	assert_non_null(strstr(sp_err_msg(err), "--kernel debian"));
	sp_err_clear(&err);
	/* One that prints no directory. */
	script = sp_xasprintf("#!/bin/sh\necho done\n");
	assert_int_equal(sp_write_file_atomic(builder, script, strlen(script), 0755, NULL), 0);
	free(script);
	assert_int_equal(sp_guest_build(&o, &err), SP_ERR_NOT_FOUND);
	assert_non_null(strstr(sp_err_msg(err), "not a directory"));
	sp_err_clear(&err);
	unsetenv("SEALPOD_KERNEL_BUILDER");
	assert_int_equal(sp_rm_rf(tmp, NULL), 0);
	free(tmp);
	free(out);
	free(builder);
	free(entry);
}

static void test_build_refuses_missing_agent(void **state)
{
	sp_guest_build_opts o;
	sp_guest_build_opts_init(&o);
	o.output_dir = "/tmp/never-created-sp";
	o.agent = "/nonexistent/sealpod-agent";
	sp_err *err = NULL;
	assert_int_equal(sp_guest_build(&o, &err), SP_ERR_NOT_FOUND);
	assert_non_null(strstr(sp_err_msg(err), "/nonexistent/sealpod-agent"));
	sp_err_clear(&err);
	assert_int_equal(access("/tmp/never-created-sp", F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpio_layout),
		cmocka_unit_test(test_compress_deterministic),
		cmocka_unit_test(test_compress_lz4_legacy),
		cmocka_unit_test(test_kernel_release),
		cmocka_unit_test(test_resolve_modules),
		cmocka_unit_test(test_build_reproducible),
		cmocka_unit_test(test_build_sealpod_kernel),
		cmocka_unit_test(test_build_refuses_missing_agent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
