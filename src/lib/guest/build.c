/* SPDX-License-Identifier: Apache-2.0 */
/* `sealpod image build`: collects the agent, the shared libraries it
 * needs, the kernel modules it loads, and writes a reproducible initramfs,
 * the kernel, its command line and a manifest. */
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <lz4hc.h>
#include <zlib.h>
#include <zstd.h>

#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/guest.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"
#include "sealpod/log.h"
#include "sealpod/snp.h"
#include "guest/kernel-builder.h"

#define MAX_INPUT_FILE (256u << 20)
/* no_timer_check: skips the boot-time check that the timer interrupt
 * ticks (a 10-tick busy wait; QEMU's timer works).
 * page_reporting_order=4: free page reporting hands back free blocks of
 * 64 KiB and up, not only whole 2 MiB pageblocks, which a guest's
 * scattered frees seldom leave (11 MiB less host memory per idle pod;
 * docs/launcher.md). Inert under SNP, which has no balloon device.
 * noreplace-smp: a kernel that finds one CPU rewrites every LOCK prefix
 * in its text to a plain one at boot. Under TCG each of those writes hits
 * code QEMU has already translated, which it must throw away: 70 ms of
 * boot and 0.1-0.2 s to a pod's first output (docs/guest-image.md). On
 * KVM the locked atomics cost a one-vCPU guest nanoseconds. */
#define CMDLINE_BASE \
	"console=ttyS0 panic=-1 oops=panic no_timer_check " \
	"page_reporting.page_reporting_order=4 noreplace-smp"

static const char *const default_modules[] = {
	"virtio_pci", "virtio_mmio", "virtio_console", "virtio_blk", "virtio_net",
	"virtio_rng", "overlay", "dm_verity", "vmw_vsock_virtio_transport",
	"configfs", "sev_guest", "tsm",
};

void sp_guest_build_opts_init(sp_guest_build_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->version = SP_GUEST_BUILD_VERSION;
}

enum { E_DIR, E_FILE, E_LINK, E_CHR };

/* One initramfs entry. origin: "sealpod" (built by us), "generated"
 * (written by this builder), or "host" (copied; package looked up). */
typedef struct entry {
	char *path;
	int kind;
	uint32_t mode;
	uint8_t *data;
	size_t len;
	char *target; /* E_LINK */
	uint32_t maj, min;
	const char *origin;
	char *host_path;
	char *package, *pkg_version;
	bool stripped;
	char *unstripped_sha256; /* the file as given, before strip */
} entry;

typedef struct image {
	entry *v;
	size_t n;
} image;

static entry *find(image *im, const char *path)
{
	for (size_t i = 0; i < im->n; i++)
		if (!strcmp(im->v[i].path, path))
			return &im->v[i];
	return NULL;
}

static entry *add(image *im, const char *path, int kind, uint32_t mode)
{
	entry *e = find(im, path);
	if (e)
		return e;
	im->v = sp_xrealloc(im->v, (im->n + 1) * sizeof(entry));
	e = &im->v[im->n++];
	memset(e, 0, sizeof(*e));
	e->path = sp_xstrdup(path);
	e->kind = kind;
	e->mode = mode;
	e->origin = "generated";
	return e;
}

static void add_parents(image *im, const char *path)
{
	_cleanup_free_ char *p = sp_xstrdup(path);
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		add(im, p, E_DIR, 0755);
		*s = '/';
	}
}

static int add_host_file(image *im, const char *path, const char *host,
			 const char *origin, sp_err **err)
{
	uint8_t *data = NULL;
	size_t len;
	if (sp_read_file(&data, &len, host, MAX_INPUT_FILE, err) < 0)
		return sp_error_wrap(err, "guest image input");
	struct stat st;
	if (stat(host, &st) < 0) {
		free(data);
		return sp_error_sys(err, errno, "stat `%s`", host);
	}
	add_parents(im, path);
	entry *e = find(im, path);
	if (e) { /* same library needed twice */
		free(data);
		return 0;
	}
	/* Only the executable bit carries over: modes must not depend on
	 * the build host's umask. */
	e = add(im, path, E_FILE, (st.st_mode & 0111) ? 0755 : 0644);
	e->data = data;
	e->len = len;
	e->origin = origin;
	e->host_path = sp_xstrdup(host);
	return 0;
}

static char *hex_sha256(const void *data, size_t len)
{
	uint8_t d[SP_SHA256_LEN];
	sp_sha256(d, data, len);
	return sp_hex_dup(d, sizeof(d));
}

static void image_free(image *im)
{
	for (size_t i = 0; i < im->n; i++) {
		entry *e = &im->v[i];
		free(e->path);
		free(e->data);
		free(e->target);
		free(e->host_path);
		free(e->package);
		free(e->pkg_version);
		free(e->unstripped_sha256);
	}
	free(im->v);
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const entry *)a)->path, ((const entry *)b)->path);
}

/* Runs argv with stdout captured and stderr discarded; returns the exit
 * code (or -1 with err when it could not run at all). */
static int capture(char *const argv[], char **out, sp_err **err)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return sp_error_sys(err, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return sp_error_sys(err, errno, "fork for `%s`", argv[0]);
	}
	if (pid == 0) {
		int dn = open("/dev/null", O_WRONLY);
		if (dup2(pfd[1], 1) < 0 || dn < 0 || dup2(dn, 2) < 0)
			_exit(127);
		setenv("LC_ALL", "C", 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	uint8_t *data = NULL;
	size_t len;
	int r = sp_read_fd(&data, &len, pfd[0], 16u << 20, argv[0], err);
	close(pfd[0]);
	int status;
	sp_waitpid(pid, &status, 0);
	if (r < 0)
		return -1;
	*out = (char *)data;
	if (!WIFEXITED(status)) {
		free(data);
		*out = NULL;
		return sp_error(err, SP_ERR_SYSTEM, "`%s` was killed", argv[0]);
	}
	if (WEXITSTATUS(status) == 127) {
		free(data);
		*out = NULL;
		return sp_error(err, SP_ERR_NOT_FOUND, "could not run `%s`", argv[0]);
	}
	return WEXITSTATUS(status);
}

/* The shared libraries a program needs, from ldd's listing; a static
 * program needs none. */
static int add_libraries(image *im, const char *prog, sp_err **err)
{
	char *argv[] = {"ldd", (char *)prog, NULL};
	_cleanup_free_ char *out = NULL;
	int rc = capture(argv, &out, err);
	if (rc < 0)
		return rc;
	if (rc != 0 || strstr(out, "statically linked") || strstr(out, "not a dynamic"))
		return 0;
	char *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (strstr(line, "=> not found"))
			return sp_error(err, SP_ERR_NOT_FOUND,
					"`%s` needs a library the host lacks: %s", prog, line);
		char *path = strstr(line, "=> ");
		path = path ? path + 3 : line;
		if (*path != '/')
			continue; /* linux-vdso.so.1 */
		char *sp = strchr(path, ' ');
		if (sp)
			*sp = 0;
		if (add_host_file(im, path, path, "host", err) < 0)
			return SP_ERR_SYSTEM;
	}
	return 0;
}

/* The agent goes in without symbols or debug information (production
 * images; --debug keeps them): the initramfs stays in guest RAM for the
 * VM's life. strip(1) output depends only on its input. */
static int strip_agent(entry *e, sp_err **err)
{
	_cleanup_free_ char *dir = NULL;
	if (sp_mkdtemp(&dir, "sealpod-strip", err) < 0)
		return SP_ERR_SYSTEM;
	_cleanup_free_ char *in = sp_xasprintf("%s/in", dir);
	_cleanup_free_ char *out = sp_xasprintf("%s/out", dir);
	int r = sp_write_file_atomic(in, e->data, e->len, 0755, err);
	char *argv[] = {"strip", "--strip-all", "-o", out, in, NULL};
	if (r == 0)
		r = sp_run(argv, NULL, 0, err);
	uint8_t *data = NULL;
	size_t len = 0;
	if (r == 0)
		r = sp_read_file(&data, &len, out, MAX_INPUT_FILE, err);
	sp_rm_rf(dir, NULL);
	if (r < 0)
		return sp_error_wrap(err, "stripping the agent (install binutils, or "
				     "build with --debug)");
	e->unstripped_sha256 = hex_sha256(e->data, e->len);
	free(e->data);
	e->data = data;
	e->len = len;
	e->stripped = true;
	return 0;
}

static char *newest_cloud_kernel(sp_err **err)
{
	glob_t g;
	if (glob("/boot/vmlinuz-*-cloud-amd64", 0, NULL, &g) != 0) {
		sp_error(err, SP_ERR_NOT_FOUND,
			 "no /boot/vmlinuz-*-cloud-amd64; install linux-image-cloud-amd64 "
			 "or give --kernel");
		return NULL;
	}
	const char *best = g.gl_pathv[0];
	for (size_t i = 1; i < g.gl_pathc; i++)
		if (strverscmp(g.gl_pathv[i], best) > 0)
			best = g.gl_pathv[i];
	char *r = sp_xstrdup(best);
	globfree(&g);
	return r;
}

/* sealpod's own kernel (docs/guest-image.md): scripts/build-kernel builds
 * it from Debian's linux-source once per machine and caches it; it prints
 * the cache entry's directory as its last line and its progress on
 * stderr, which the user sees. */
static char *sealpod_kernel_dir(sp_err **err)
{
	const char *builder = getenv("SEALPOD_KERNEL_BUILDER");
	if (!builder || !*builder)
		builder = SEALPOD_KERNEL_BUILDER;
	if (access(builder, X_OK) < 0) {
		sp_error_sys(err, errno,
			     "the guest kernel builder `%s` (set SEALPOD_KERNEL_BUILDER, or "
			     "give --kernel debian or --kernel PATH)", builder);
		return NULL;
	}
	char *argv[] = {(char *)builder, NULL};
	_cleanup_free_ char *out = NULL;
	if (sp_run(argv, &out, 64 << 10, err) < 0) {
		sp_error_wrap(err, "building sealpod's guest kernel (or give --kernel "
			      "debian to use Debian's cloud kernel)");
		return NULL;
	}
	size_t n = strlen(out);
	while (n && out[n - 1] == '\n')
		out[--n] = 0;
	char *last = strrchr(out, '\n');
	last = last ? last + 1 : out;
	if (*last != '/') {
		sp_error(err, SP_ERR_PARSE, "`%s` printed `%.200s`, not a directory",
			 builder, last);
		return NULL;
	}
	return sp_xstrdup(last);
}

static char *dir_of(const char *path)
{
	char *dir = sp_xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		strcpy(dir, ".");
	return dir;
}

/* The kernel's config-<release> next to it (as in /boot and in the
 * kernel cache), or NULL. */
static uint8_t *read_kernel_config(const char *kernel, const char *release,
				   size_t *len)
{
	_cleanup_free_ char *dir = dir_of(kernel);
	_cleanup_free_ char *cfg = sp_xasprintf("%s/config-%s", dir, release);
	uint8_t *data = NULL;
	if (sp_read_file(&data, len, cfg, 16u << 20, NULL) < 0)
		return NULL;
	return data;
}

/* The rest of the first line starting with `prefix` (NULL if none), its
 * length in *rest. */
static const uint8_t *config_line(const uint8_t *cfg, size_t len, const char *prefix,
				  size_t *rest)
{
	size_t n = strlen(prefix);
	for (size_t i = 0; cfg && i + n <= len; i++) {
		if ((i && cfg[i - 1] != '\n') || memcmp(cfg + i, prefix, n))
			continue;
		const uint8_t *v = cfg + i + n, *nl = memchr(v, '\n', len - i - n);
		*rest = nl ? (size_t)(nl - v) : len - i - n;
		return v;
	}
	return NULL;
}

static bool config_has(const uint8_t *cfg, size_t len, const char *line)
{
	size_t rest;
	return config_line(cfg, len, line, &rest) && rest == 0;
}

/* The decimal value of `name` (e.g. "CONFIG_HZ="), or 0. */
static unsigned long config_number(const uint8_t *cfg, size_t len, const char *name)
{
	size_t rest;
	const uint8_t *v = config_line(cfg, len, name, &rest);
	unsigned long n = 0;
	for (size_t k = 0; v && k < rest; k++) {
		if (v[k] < '0' || v[k] > '9' || n >= 1000000000ul)
			return 0;
		n = n * 10 + (unsigned long)(v[k] - '0');
	}
	return n;
}

/* What the kernel unpacks, fastest first under TCG: LZ4 unpacks in a
 * fraction of zstd's time for a somewhat larger file (docs/guest-image.md). */
static int choose_compression(const uint8_t *cfg, size_t len)
{
	if (config_has(cfg, len, "CONFIG_RD_LZ4=y"))
		return SP_GUEST_COMPRESS_LZ4;
	if (config_has(cfg, len, "CONFIG_RD_ZSTD=y"))
		return SP_GUEST_COMPRESS_ZSTD;
	return SP_GUEST_COMPRESS_GZIP;
}

/* build-info of a kernel cache entry (key=value lines written by
 * scripts/build-kernel) into the manifest's kernel object. */
static void add_build_info(json_t *jk, const char *dir)
{
	_cleanup_free_ char *p = sp_xasprintf("%s/build-info", dir);
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	if (sp_read_file(&data, &len, p, 64 << 10, NULL) < 0)
		return;
	static const char *const keys[] = {"source_package", "source_version",
					   "fragment_sha256", "additions_sha256",
					   "config_sha256", "toolchain", "options_enabled"};
	char *save = NULL;
	for (char *line = strtok_r((char *)data, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = 0;
		for (size_t i = 0; i < SP_ARRAY_LEN(keys); i++)
			if (!strcmp(line, keys[i]))
				json_object_set_new(jk, keys[i],
						    !strcmp(line, "options_enabled")
							    ? json_integer(strtoll(eq + 1, NULL, 10))
							    : json_string(eq + 1));
	}
}

static int add_modules(image *im, const sp_guest_build_opts *o, const char *moddir,
		       const char *release, json_t *jmods, sp_err **err)
{
	const char *const *names = o->modules ? o->modules : default_modules;
	size_t n = o->modules ? o->n_modules : SP_ARRAY_LEN(default_modules);
	_cleanup_free_ char *dep_path = sp_xasprintf("%s/modules.dep", moddir);
	_cleanup_free_ char *bi_path = sp_xasprintf("%s/modules.builtin", moddir);
	_cleanup_free_ uint8_t *dep = NULL, *bi = NULL;
	size_t dep_len = 0, bi_len = 0;
	if (sp_read_file(&dep, &dep_len, dep_path, 64u << 20, err) < 0)
		return sp_error_wrap(err, "kernel modules of %s (give --modules DIR)",
				     release);
	if (sp_read_file(&bi, &bi_len, bi_path, 64u << 20, NULL) < 0)
		bi = NULL;
	_cleanup_strv_ char **paths = NULL;
	_cleanup_strv_ char **status = NULL;
	if (sp_guest_resolve_modules(&paths, &status, (char *)dep, dep_len, (char *)bi,
				     bi_len, names, n, err) < 0)
		return sp_error_wrap(err, "%s", dep_path);
	for (size_t i = 0; i < n; i++) {
		json_t *m = json_object();
		json_object_set_new(m, "name", json_string(names[i]));
		json_object_set_new(m, "status", json_string(status[i]));
		json_array_append_new(jmods, m);
	}
	sp_buf list = SP_BUF_INIT;
	for (char **p = paths; *p; p++) {
		if (strstr(*p, "..") || (*p)[0] == '/') {
			sp_buf_free(&list);
			return sp_error(err, SP_ERR_PARSE, "%s: odd module path `%s`",
					dep_path, *p);
		}
		_cleanup_free_ char *host = sp_xasprintf("%s/%s", moddir, *p);
		_cleanup_free_ char *in = sp_xasprintf("/lib/modules/%s/%s", release, *p);
		if (add_host_file(im, in, host, "host", err) < 0) {
			sp_buf_free(&list);
			return SP_ERR_SYSTEM;
		}
		find(im, in)->mode = 0644;
		sp_buf_printf(&list, "%s\n", in);
	}
	add_parents(im, SP_GUEST_MODULES_LIST);
	entry *e = add(im, SP_GUEST_MODULES_LIST, E_FILE, 0644);
	e->data = sp_buf_steal(&list, &e->len);
	return 0;
}

/* Debian package and version of each host file, in two batched calls. */
static void lookup_packages(image *im)
{
	size_t n = 0;
	for (size_t i = 0; i < im->n; i++)
		if (im->v[i].host_path && !strcmp(im->v[i].origin, "host"))
			n++;
	if (!n)
		return;
	char **argv = sp_xcalloc(n + 4, sizeof(char *));
	size_t a = 0;
	argv[a++] = "dpkg";
	argv[a++] = "-S";
	argv[a++] = "--";
	for (size_t i = 0; i < im->n; i++)
		if (im->v[i].host_path && !strcmp(im->v[i].origin, "host"))
			argv[a++] = im->v[i].host_path;
	_cleanup_free_ char *out = NULL;
	_cleanup_err_ sp_err *e = NULL;
	if (capture(argv, &out, &e) < 0 || !out) {
		sp_log_warn("dpkg -S: %s; the manifest will lack package names",
			    sp_err_msg(e));
		free(argv);
		return;
	}
	free(argv);
	char *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sep = strstr(line, ": /");
		if (!sep || !strncmp(line, "diversion", 9))
			continue;
		*sep = 0;
		const char *path = sep + 2;
		char *comma = strchr(line, ',');
		if (comma)
			*comma = 0;
		for (size_t i = 0; i < im->n; i++)
			if (im->v[i].host_path && !im->v[i].package &&
			    !strcmp(im->v[i].host_path, path))
				im->v[i].package = sp_xstrdup(line);
	}
	/* Versions: one dpkg-query for all the packages found. */
	char **qv = sp_xcalloc(im->n + 5, sizeof(char *));
	a = 0;
	qv[a++] = "dpkg-query";
	qv[a++] = "-W";
	qv[a++] = "-f=${binary:Package}\t${Version}\n";
	qv[a++] = "--";
	size_t first = a;
	for (size_t i = 0; i < im->n; i++) {
		if (!im->v[i].package)
			continue;
		bool dup = false;
		for (size_t j = first; j < a; j++)
			dup |= !strcmp(qv[j], im->v[i].package);
		if (!dup)
			qv[a++] = im->v[i].package;
	}
	_cleanup_free_ char *vout = NULL;
	sp_err_clear(&e);
	if (a > first && capture(qv, &vout, &e) >= 0 && vout) {
		for (char *line = strtok_r(vout, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			char *tab = strchr(line, '\t');
			if (!tab)
				continue;
			*tab = 0;
			for (size_t i = 0; i < im->n; i++) {
				const char *p = im->v[i].package;
				if (!p)
					continue;
				/* "libc6:amd64" matches "libc6:amd64" or, for
				 * arch-less names, "libc6". */
				size_t pl = strcspn(p, ":");
				if (!strcmp(p, line) || (strlen(line) == pl && !strncmp(p, line, pl)))
					if (!im->v[i].pkg_version)
						im->v[i].pkg_version = sp_xstrdup(tab + 1);
			}
		}
	}
	free(qv);
}

/* A JSON string that takes over a malloc'ed C string. */
static json_t *take_string(char *s)
{
	json_t *j = json_string(s);
	free(s);
	return j;
}

static json_t *file_json(const entry *e)
{
	json_t *j = json_object();
	static const char *const kinds[] = {"dir", "file", "symlink", "chardev"};
	json_object_set_new(j, "path", json_string(e->path));
	json_object_set_new(j, "type", json_string(kinds[e->kind]));
	char mode[8];
	snprintf(mode, sizeof(mode), "%04o", e->mode);
	json_object_set_new(j, "mode", json_string(mode));
	if (e->kind == E_FILE) {
		json_object_set_new(j, "size", json_integer((json_int_t)e->len));
		json_object_set_new(j, "sha256", take_string(hex_sha256(e->data, e->len)));
	}
	if (e->kind == E_LINK)
		json_object_set_new(j, "target", json_string(e->target));
	if (e->kind == E_CHR) {
		char dev[24];
		snprintf(dev, sizeof(dev), "%u:%u", e->maj, e->min);
		json_object_set_new(j, "device", json_string(dev));
	}
	json_object_set_new(j, "origin", json_string(e->origin));
	if (!strcmp(e->origin, "sealpod"))
		json_object_set_new(j, "sealpod_version", json_string(SEALPOD_VERSION));
	if (e->stripped) {
		json_object_set_new(j, "stripped", json_true());
		json_object_set_new(j, "unstripped_sha256", json_string(e->unstripped_sha256));
	}
	if (e->package) {
		json_object_set_new(j, "package", json_string(e->package));
		if (e->pkg_version)
			json_object_set_new(j, "version", json_string(e->pkg_version));
	} else if (!strcmp(e->origin, "host")) {
		json_object_set_new(j, "package", json_null());
	}
	return j;
}

static int write_out(const char *dir, const char *name, const void *data,
		     size_t len, sp_err **err)
{
	_cleanup_free_ char *p = sp_xasprintf("%s/%s", dir, name);
	return sp_write_file_atomic(p, data, len, 0644, err);
}

/* The expected SNP launch measurements for this kernel, initrd and
 * command line with the given OVMF and vCPU count (as the launcher starts
 * SNP guests: -cpu EPYC-v4, kernel-hashes=on). "launch_measurement" is
 * what hardware reports; "sim_launch_measurement" what the sim PSP
 * reports for its direct boot (docs/attestation.md). */
static json_t *snp_json(const sp_guest_build_opts *o, const char *cmdline)
{
	json_t *snp = json_object();
	unsigned vcpus = o->vcpus ? o->vcpus : 1;
	json_object_set_new(snp, "vcpus", json_integer(vcpus));
	json_object_set_new(snp, "vcpu_type", json_string("EPYC-v4"));
	if (!o->ovmf) {
		json_object_set_new(snp, "note",
				    json_string("no measurement: give --ovmf FILE (and "
						"--vcpus N) to compute the expected one"));
		return snp;
	}
	json_object_set_new(snp, "ovmf", json_string(o->ovmf));
	uint8_t d[SP_SHA256_LEN];
	if (sp_sha256_file(d, o->ovmf, NULL) == 0)
		json_object_set_new(snp, "ovmf_sha256", take_string(sp_hex_dup(d, sizeof(d))));
	_cleanup_free_ char *k = sp_xasprintf("%s/%s", o->output_dir, SP_GUEST_KERNEL);
	_cleanup_free_ char *i = sp_xasprintf("%s/%s", o->output_dir, SP_GUEST_INITRD);
	for (int sim = 0; sim < 2; sim++) {
		sp_snp_measure_opts mo;
		sp_snp_measure_opts_init(&mo);
		mo.ovmf = o->ovmf;
		mo.vcpus = vcpus;
		mo.vcpu_type = "EPYC-v4";
		mo.kernel = k;
		mo.initrd = i;
		mo.append = cmdline;
		mo.sim_direct_boot = sim;
		uint8_t meas[SP_SNP_MEASUREMENT_LEN];
		_cleanup_err_ sp_err *e = NULL;
		const char *key = sim ? "sim_launch_measurement" : "launch_measurement";
		if (sp_snp_measure(meas, &mo, &e) == 0) {
			json_object_set_new(snp, key, take_string(sp_hex_dup(meas, sizeof(meas))));
		} else {
			_cleanup_free_ char *ek = sp_xasprintf("%s_error", key);
			json_object_set_new(snp, ek, json_string(sp_err_msg(e)));
		}
	}
	return snp;
}

/* Everything after collecting: the archive, the files, the manifest. */
typedef struct kernel_src {
	const char *path;       /* the bzImage */
	const char *built_dir;  /* the kernel cache entry, for sealpod's kernel */
	const uint8_t *img;
	size_t len;
	const char *release;
	const uint8_t *config; /* config-<release>, if found */
	size_t config_len;
} kernel_src;

static int write_image(const sp_guest_build_opts *o, image *im, const kernel_src *k,
		       int compress, json_t *jmods, sp_err **err)
{
	const char *kernel = k->path, *release = k->release;
	const uint8_t *kimg = k->img;
	size_t klen = k->len;
	qsort(im->v, im->n, sizeof(entry), cmp_entry);
	sp_cpio *c = sp_cpio_new(o->mtime);
	for (size_t i = 0; i < im->n; i++) {
		entry *e = &im->v[i];
		switch (e->kind) {
		case E_DIR:
			sp_cpio_add_dir(c, e->path, e->mode);
			break;
		case E_FILE:
			sp_cpio_add_file(c, e->path, e->mode, e->data, e->len);
			break;
		case E_LINK:
			sp_cpio_add_symlink(c, e->path, e->target);
			break;
		case E_CHR:
			sp_cpio_add_chardev(c, e->path, e->mode, e->maj, e->min);
			break;
		}
	}
	size_t cpio_len;
	_cleanup_free_ uint8_t *cpio = sp_cpio_finish(c, &cpio_len);
	sp_cpio_free(c);
	_cleanup_free_ uint8_t *initrd = NULL;
	size_t initrd_len;
	int r;
	if ((r = sp_guest_compress(&initrd, &initrd_len, cpio, cpio_len, compress, err)) < 0)
		return r;

	/* sealpod's kernel takes the local APIC timer's period (its
	 * lapic_timer_period= addition): QEMU's and KVM's APIC bus runs at
	 * 1 GHz, so a tick is 10^9 / HZ bus clocks. Saves 100 ms of
	 * calibration under TCG (docs/guest-image.md). */
	unsigned long hz = k->built_dir ? config_number(k->config, k->config_len, "CONFIG_HZ=") : 0;
	_cleanup_free_ char *lapic = hz >= 100 && hz <= 1000
					     ? sp_xasprintf(" lapic_timer_period=%lu", 1000000000ul / hz)
					     : sp_xstrdup("");
	_cleanup_free_ char *cmdline = sp_xasprintf(
		"%s%s%s%s%s", CMDLINE_BASE, lapic, o->debug ? "" : " quiet",
		o->cmdline_extra ? " " : "", o->cmdline_extra ? o->cmdline_extra : "");

	if ((r = sp_mkdir_p(o->output_dir, 0755, err)) < 0)
		return r;
	if ((r = write_out(o->output_dir, SP_GUEST_KERNEL, kimg, klen, err)) < 0 ||
	    (r = write_out(o->output_dir, SP_GUEST_INITRD, initrd, initrd_len, err)) < 0 ||
	    (r = write_out(o->output_dir, SP_GUEST_CMDLINE, cmdline, strlen(cmdline), err)) < 0)
		return r;
	if (k->config &&
	    (r = write_out(o->output_dir, SP_GUEST_KERNEL_CONFIG, k->config, k->config_len, err)) < 0)
		return r;

	/* The manifest. */
	_cleanup_json_ json_t *m = json_object();
	json_object_set_new(m, "format", json_string("sealpod-guest-image/1"));
	json_object_set_new(m, "sealpod_version", json_string(SEALPOD_VERSION));
	json_t *jk = json_object();
	json_object_set_new(jk, "file", json_string(SP_GUEST_KERNEL));
	json_object_set_new(jk, "release", json_string(release));
	json_object_set_new(jk, "sha256", take_string(hex_sha256(kimg, klen)));
	json_object_set_new(jk, "size", json_integer((json_int_t)klen));
	if (k->config) {
		json_object_set_new(jk, "config", json_string(SP_GUEST_KERNEL_CONFIG));
		json_object_set_new(jk, "config_file_sha256",
				    take_string(hex_sha256(k->config, k->config_len)));
	}
	json_object_set_new(jk, "modules_supported",
			    json_boolean(!config_has(k->config, k->config_len,
						     "# CONFIG_MODULES is not set")));
	if (k->built_dir) {
		/* Built by scripts/build-kernel from Debian's sources. */
		json_object_set_new(jk, "origin", json_string("sealpod"));
		add_build_info(jk, k->built_dir);
	} else {
		json_object_set_new(jk, "origin", json_string("host"));
		image kim = {0};
		entry *ke = add(&kim, kernel, E_FILE, 0644);
		ke->origin = "host";
		ke->host_path = sp_xstrdup(kernel);
		lookup_packages(&kim);
		if (ke->package)
			json_object_set_new(jk, "package", json_string(ke->package));
		if (ke->pkg_version)
			json_object_set_new(jk, "version", json_string(ke->pkg_version));
		image_free(&kim);
	}
	json_object_set_new(m, "kernel", jk);
	json_t *ji = json_object();
	json_object_set_new(ji, "file", json_string(SP_GUEST_INITRD));
	json_object_set_new(ji, "sha256", take_string(hex_sha256(initrd, initrd_len)));
	json_object_set_new(ji, "size", json_integer((json_int_t)initrd_len));
	json_object_set_new(ji, "uncompressed_size", json_integer((json_int_t)cpio_len));
	json_object_set_new(ji, "format", json_string("newc"));
	if (compress == SP_GUEST_COMPRESS_ZSTD)
		json_object_set_new(ji, "compression",
				    take_string(sp_xasprintf("zstd level 19 (libzstd %s)",
								     ZSTD_versionString())));
	else if (compress == SP_GUEST_COMPRESS_LZ4)
		json_object_set_new(ji, "compression",
				    take_string(sp_xasprintf("lz4 legacy, HC level %d (liblz4 %s)",
								     LZ4HC_CLEVEL_MAX,
								     LZ4_versionString())));
	else if (compress == SP_GUEST_COMPRESS_GZIP)
		json_object_set_new(ji, "compression",
				    take_string(sp_xasprintf("gzip level 9 (zlib %s)",
								     zlibVersion())));
	else
		json_object_set_new(ji, "compression", json_string("none"));
	json_object_set_new(ji, "mtime", json_integer(o->mtime));
	json_object_set_new(m, "initrd", ji);
	json_object_set_new(m, "cmdline", json_string(cmdline));
	json_object_set_new(m, "cmdline_sha256",
			    take_string(hex_sha256(cmdline, strlen(cmdline))));
	json_object_set_new(m, "debug", json_boolean(o->debug));
	json_object_set_new(m, "modules", json_incref(jmods));
	json_t *jf = json_array();
	for (size_t i = 0; i < im->n; i++)
		json_array_append_new(jf, file_json(&im->v[i]));
	json_object_set_new(m, "files", jf);
	json_object_set_new(m, "snp", snp_json(o, cmdline));
	_cleanup_free_ char *text = sp_json_dump_pretty(m);
	_cleanup_free_ char *textnl = sp_xasprintf("%s\n", text);
	r = write_out(o->output_dir, SP_GUEST_MANIFEST, textnl, strlen(textnl), err);
	if (r == 0)
		sp_log_info("guest image in %s: initrd %zu bytes (%zu uncompressed), "
			    "kernel %s", o->output_dir, initrd_len, cpio_len, release);
	return r;
}

int sp_guest_build(const sp_guest_build_opts *o, sp_err **err)
{
	if (o->version != SP_GUEST_BUILD_VERSION)
		return sp_error(err, SP_ERR_INVALID,
				"sp_guest_build_opts version %u is not %u", o->version,
				SP_GUEST_BUILD_VERSION);
	if (!o->output_dir || !*o->output_dir)
		return sp_error(err, SP_ERR_INVALID, "no output directory given");
	if (!o->agent || access(o->agent, R_OK | X_OK) < 0)
		return sp_error(err, SP_ERR_NOT_FOUND,
				"agent binary `%s` is missing or not executable; build it "
				"with `make` or give --agent",
				o->agent ? o->agent : "(none)");
	if (o->ovmf && access(o->ovmf, R_OK) < 0)
		return sp_error_sys(err, errno, "OVMF firmware `%s` (--ovmf)", o->ovmf);
	/* --kernel: sealpod (the default), debian, or a path. */
	_cleanup_free_ char *built_dir = NULL, *kernel = NULL;
	if (!o->kernel || !strcmp(o->kernel, "sealpod")) {
		if (!(built_dir = sealpod_kernel_dir(err)))
			return SP_ERR_NOT_FOUND;
		kernel = sp_xasprintf("%s/bzImage", built_dir);
	} else if (!strcmp(o->kernel, "debian")) {
		kernel = newest_cloud_kernel(err);
	} else {
		kernel = sp_xstrdup(o->kernel);
	}
	if (!kernel)
		return SP_ERR_NOT_FOUND;
	_cleanup_free_ uint8_t *kimg = NULL;
	size_t klen;
	if (sp_read_file(&kimg, &klen, kernel, MAX_INPUT_FILE, err) < 0)
		return sp_error_wrap(err, "guest kernel");
	_cleanup_free_ char *release = NULL;
	if (sp_guest_kernel_release(&release, kimg, klen, err) < 0)
		return sp_error_wrap(err, "guest kernel `%s`", kernel);
	_cleanup_free_ char *moddir = o->modules_dir
		? sp_xstrdup(o->modules_dir)
		: sp_xasprintf("/lib/modules/%s", release);
	size_t cfg_len = 0;
	_cleanup_free_ uint8_t *cfg = read_kernel_config(kernel, release, &cfg_len);
	int compress = o->compress ? o->compress : choose_compression(cfg, cfg_len);
	/* A kernel without module support (sealpod's) gets no modules and an
	 * empty load list. */
	bool modules = !config_has(cfg, cfg_len, "# CONFIG_MODULES is not set");

	image im = {0};
	int r = 0;
	_cleanup_json_ json_t *jmods = json_array();
	/* The skeleton: mount points pid 1 uses, and the console the kernel
	 * opens for /init before devtmpfs exists. */
	const char *dirs[] = {"/dev", "/proc", "/sys", "/run", "/tmp", "/mnt", "/etc",
			      "/etc/sealpod"};
	for (size_t i = 0; i < SP_ARRAY_LEN(dirs); i++)
		add(&im, dirs[i], E_DIR, 0755);
	find(&im, "/tmp")->mode = 01777;
	entry *con = add(&im, "/dev/console", E_CHR, 0600);
	con->maj = 5;
	con->min = 1;
	entry *nul = add(&im, "/dev/null", E_CHR, 0666);
	nul->maj = 1;
	nul->min = 3;
	if ((r = add_host_file(&im, "/sbin/sealpod-agent", o->agent, "sealpod", err)) < 0)
		goto out;
	find(&im, "/sbin/sealpod-agent")->mode = 0755;
	if (!o->debug && (r = strip_agent(find(&im, "/sbin/sealpod-agent"), err)) < 0)
		goto out;
	entry *init = add(&im, "/init", E_LINK, 0777);
	init->target = sp_xstrdup("/sbin/sealpod-agent");
	if ((r = add_libraries(&im, o->agent, err)) < 0)
		goto out;
	if (o->debug) {
		const char *bb = o->busybox ? o->busybox : "/bin/busybox";
		if ((r = add_host_file(&im, "/bin/busybox", bb, "host", err)) < 0)
			goto out;
		if ((r = add_libraries(&im, bb, err)) < 0)
			goto out;
		entry *sh = add(&im, "/bin/sh", E_LINK, 0777);
		sh->target = sp_xstrdup("busybox");
	}
	if (modules) {
		if ((r = add_modules(&im, o, moddir, release, jmods, err)) < 0)
			goto out;
	} else {
		add_parents(&im, SP_GUEST_MODULES_LIST);
		add(&im, SP_GUEST_MODULES_LIST, E_FILE, 0644);
	}
	/* `ca: "system"` in a policy (docs/images.md): the CA bundle is part
	 * of the measured image. update-ca-certificates generates it, so
	 * dpkg does not own it: it is listed as ca-certificates'. */
	const char *cab = o->ca_bundle ? o->ca_bundle : "/etc/ssl/certs/ca-certificates.crt";
	if (o->ca_bundle || access(cab, R_OK) == 0) {
		if ((r = add_host_file(&im, "/etc/ssl/certs/ca-certificates.crt", cab, "host",
				       err)) < 0)
			goto out;
		find(&im, "/etc/ssl/certs/ca-certificates.crt")->package =
			sp_xstrdup("ca-certificates");
	}
	lookup_packages(&im);

	kernel_src ks = {.path = kernel, .built_dir = built_dir, .img = kimg, .len = klen,
			 .release = release, .config = cfg, .config_len = cfg_len};
	r = write_image(o, &im, &ks, compress, jmods, err);
out:
	image_free(&im);
	return r;
}
