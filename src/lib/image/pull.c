/* SPDX-License-Identifier: Apache-2.0 */
/* Pulling: the policy pins the manifest (or index) digest, the manifest
 * pins the config and the compressed layers, the config pins the
 * uncompressed layers (diff_ids). Every blob is hashed as it streams
 * through guest memory; the rootfs is unpacked into a temporary directory
 * and renamed into place only when every digest matched. */
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "image-internal.h"
#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/log.h"

#define MAX_TRAILER (16u << 20) /* bytes after a layer's end-of-archive */

int sp_image_store_open(sp_image_store **out, const char *spec,
			const struct sp_image_store_opts *opts, sp_err **err)
{
	if (opts && opts->version != SP_IMAGE_STORE_OPTS_VERSION)
		return sp_error(err, SP_ERR_INVALID, "image store options: unknown version %u",
				opts->version);
	if (!strncmp(spec, "dir:", 4))
		return img_layout_open_dir(out, spec + 4, err);
	if (!strncmp(spec, "tar:", 4))
		return img_layout_open_tar(out, spec + 4, err);
	if (!strncmp(spec, "registry:", 9))
		return img_registry_open(out, spec + 9, opts, err);
	return sp_error(err, SP_ERR_INVALID,
			"image store `%s`: expected dir:PATH, tar:PATH or registry:URL", spec);
}

void sp_image_store_close(sp_image_store *s)
{
	if (s)
		s->ops->close(s);
}

static char *digest_of(const void *data, size_t len)
{
	return sp_sha256_digest_str(data, len);
}

/* Reads a small verified blob (a config). */
static int read_blob(sp_image_store *s, const sp_image_ref *ref,
		     const struct img_desc *d, const char *what, uint8_t **out,
		     size_t *len, sp_err **err)
{
	if (d->size > IMG_MAX_JSON)
		return sp_error(err, SP_ERR_LIMIT, "%s is larger than %u bytes", what,
				IMG_MAX_JSON);
	img_stream *raw = NULL;
	int r = s->ops->open_blob(s, ref, d->digest, d->size, &raw, err);
	if (r < 0)
		return r;
	_cleanup_stream_ img_stream *v = img_verify_stream(raw, d->digest, d->size, what);
	uint8_t *buf = sp_xmalloc((size_t)d->size + 1);
	if ((r = img_read_full(v, buf, (size_t)d->size, what, err)) < 0) {
		free(buf);
		return r;
	}
	uint8_t one;
	ssize_t n = v->read(v, &one, 1, err); /* end: the digest check */
	if (n != 0) {
		free(buf);
		return n < 0 ? (int)n : sp_error(err, SP_ERR_APPRAISAL, "%s is too long", what);
	}
	buf[d->size] = 0;
	*out = buf;
	*len = (size_t)d->size;
	return 0;
}

struct resolved {
	char *top_digest;        /* what the policy pins */
	struct img_manifest m;
	uint8_t *config;
	size_t config_len;
	char **diff_ids;
};

static void resolved_clear(struct resolved *r)
{
	free(r->top_digest);
	img_manifest_clear(&r->m);
	free(r->config);
	sp_strv_freep(&r->diff_ids);
}

/* Fetches the manifest of ref (resolving an index to linux/amd64) and the
 * config, each verified. pin: the digest the top object must have, or
 * NULL to accept what a tag resolves to (host side only). */
static int resolve(sp_image_store *s, sp_image_ref *ref, const char *pin,
		   struct resolved *out, sp_err **err)
{
	_cleanup_free_ char *ref_str = sp_image_ref_str(ref);
	if (pin) {
		free(ref->digest);
		ref->digest = sp_xstrdup(pin);
	}
	_cleanup_free_ uint8_t *data = NULL;
	_cleanup_free_ char *mt = NULL;
	size_t len;
	int r = s->ops->get_manifest(s, ref, &data, &len, &mt, err);
	if (r < 0 && ref->digest)
		return sp_error_wrap(err, "image %s: manifest %s", ref_str, ref->digest);
	if (r < 0)
		return sp_error_wrap(err, "image %s", ref_str);
	out->top_digest = digest_of(data, len);
	if (ref->digest && strcmp(out->top_digest, ref->digest))
		return sp_error(err, SP_ERR_APPRAISAL,
				"image %s: the store returned a manifest with digest %s, not the pinned %s; refused (the store is corrupt or was tampered with)",
				ref_str, out->top_digest, ref->digest);
	int kind;
	if ((r = img_manifest_kind(data, len, mt, &kind, err)) < 0)
		return sp_error_wrap(err, "image %s", ref_str);
	if (kind == IMG_KIND_INDEX) {
		struct img_desc d = {0};
		if ((r = img_index_select(&d, data, len, err)) < 0)
			return sp_error_wrap(err, "image %s", ref_str);
		free(data);
		data = NULL;
		free(mt);
		mt = NULL;
		sp_image_ref sub = *ref;
		sub.digest = d.digest;
		r = s->ops->get_manifest(s, &sub, &data, &len, &mt, err);
		if (r >= 0) {
			_cleanup_free_ char *got = digest_of(data, len);
			if (strcmp(got, d.digest) || (int64_t)len != d.size)
				r = sp_error(err, SP_ERR_APPRAISAL,
					     "image %s: the linux/amd64 manifest has digest %s, the index pins %s; refused",
					     ref_str, got, d.digest);
		}
		if (r >= 0)
			r = img_manifest_kind(data, len, mt, &kind, err);
		if (r >= 0 && kind != IMG_KIND_MANIFEST)
			r = sp_error(err, SP_ERR_PARSE, "an index inside an index is not supported");
		img_desc_clear(&d);
		if (r < 0)
			return sp_error_wrap(err, "image %s", ref_str);
	}
	if ((r = img_manifest_parse(&out->m, data, len, err)) < 0)
		return sp_error_wrap(err, "image %s", ref_str);
	if ((r = read_blob(s, ref, &out->m.config, "image config", &out->config,
			   &out->config_len, err)) < 0)
		return sp_error_wrap(err, "image %s", ref_str);
	if ((r = img_config_diff_ids(&out->diff_ids, out->config, out->config_len, err)) < 0)
		return sp_error_wrap(err, "image %s", ref_str);
	size_t nd = 0;
	while (out->diff_ids[nd])
		nd++;
	if (nd != out->m.nlayers)
		return sp_error(err, SP_ERR_PARSE,
				"image %s: the manifest has %zu layers, the config %zu diff_ids",
				ref_str, out->m.nlayers, nd);
	return 0;
}

int sp_image_fetch_config(sp_image_store *s, const char *ref_s, char **digest_out,
			  char **config_json, sp_err **err)
{
	_cleanup_image_ref_ sp_image_ref *ref = NULL;
	int r = sp_image_ref_parse(&ref, ref_s, err);
	if (r < 0)
		return r;
	struct resolved res = {0};
	if ((r = resolve(s, ref, NULL, &res, err)) < 0) {
		resolved_clear(&res);
		return r;
	}
	if (digest_out)
		*digest_out = sp_steal_ptr(&res.top_digest);
	if (config_json)
		*config_json = (char *)sp_steal_ptr(&res.config);
	resolved_clear(&res);
	return 0;
}

int img_layers(sp_image_store *s, const char *ref_s, const char *pin,
	       struct img_manifest *m, char ***diff_ids, sp_err **err)
{
	_cleanup_image_ref_ sp_image_ref *ref = NULL;
	int r = sp_image_ref_parse(&ref, ref_s, err);
	if (r < 0)
		return r;
	struct resolved res = {0};
	if ((r = resolve(s, ref, pin, &res, err)) == 0) {
		*m = res.m;
		memset(&res.m, 0, sizeof(res.m));
		*diff_ids = sp_steal_ptr(&res.diff_ids);
	}
	resolved_clear(&res);
	return r;
}

/* Streams one layer through both digests into the unpacker. */
static int apply_layer(sp_image_store *s, const sp_image_ref *ref,
		       const struct img_desc *d, const char *diff_id,
		       img_unpack *u, sp_err **err)
{
	const char *algo;
	int r = img_layer_compression(d->media_type, &algo, err);
	if (r < 0)
		return r;
	/* The disk the host packed may hold the layer uncompressed too,
	 * under its diff_id (sp_image_pack). The config's diff_id pins those
	 * bytes as the manifest pins the compressed ones, and reading them
	 * costs no inflating and one hash instead of two. */
	bool plain = algo && s->ops->has_blob && s->ops->has_blob(s, diff_id);
	img_stream *raw = NULL;
	if ((r = s->ops->open_blob(s, ref, plain ? diff_id : d->digest, plain ? -1 : d->size,
				   &raw, err)) < 0)
		return r;
	img_stream *in = plain ? raw
			       : img_decompress_stream(img_verify_stream(raw, d->digest, d->size,
									 "layer"),
						       algo);
	_cleanup_stream_ img_stream *v = img_verify_stream(img_readahead_stream(in), diff_id, -1,
							   "uncompressed layer");
	img_tar *t = img_tar_new(v);
	r = img_unpack_layer(u, t, err);
	img_tar_free(t);
	if (r < 0)
		return sp_error_wrap(err, "layer %s", d->digest);
	/* Drain what follows the end-of-archive so that both digests
	 * cover the whole blob. */
	_cleanup_free_ uint8_t *sink = sp_xmalloc(65536);
	uint64_t extra = 0;
	ssize_t n;
	while ((n = v->read(v, sink, 65536, err)) > 0)
		if ((extra += (uint64_t)n) > MAX_TRAILER)
			return sp_error(err, SP_ERR_LIMIT,
					"layer %s: more than %u bytes after its end-of-archive",
					d->digest, MAX_TRAILER);
	return n < 0 ? sp_error_wrap(err, "layer %s", d->digest) : 0;
}

static struct img_unpack_opts unpack_opts(const struct sp_image_limits *l)
{
	struct img_unpack_opts o = {
		.max_bytes = l && l->max_bytes ? l->max_bytes : (1ull << 30),
		.max_entries = l && l->max_entries ? l->max_entries : 1000000,
		.chown = l && l->chown_mode ? l->chown_mode > 0 : geteuid() == 0,
	};
	return o;
}

/* A sibling temporary directory of path (same filesystem: rename). */
static int sibling_tmp(char **out, int *fd, const char *path, sp_err **err)
{
	char *tmp = sp_xasprintf("%s.tmp-XXXXXX", path);
	if (!mkdtemp(tmp)) {
		int r = sp_error_sys(err, errno, "create a directory next to `%s`", path);
		free(tmp);
		return r;
	}
	*fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0 || fchmod(*fd, 0755) < 0) {
		int r = sp_error_sys(err, errno, "open `%s`", tmp);
		rmdir(tmp);
		free(tmp);
		return r;
	}
	*out = tmp;
	return 0;
}

/* The layer cache: one directory per diff_id, unpacked once. */
static int cache_layer(sp_image_store *s, const sp_image_ref *ref,
		       const char *cache, const struct img_desc *d,
		       const char *diff_id, const struct img_unpack_opts *o,
		       char **out, sp_err **err)
{
	char *final = sp_xasprintf("%s/%s", cache, diff_id + 7);
	struct stat st;
	if (lstat(final, &st) == 0 && S_ISDIR(st.st_mode)) {
		*out = final;
		return 0;
	}
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -1;
	int r = sibling_tmp(&tmp, &fd, final, err);
	if (r < 0) {
		free(final);
		return r;
	}
	struct img_unpack_opts lo = *o;
	lo.overlay_whiteouts = true;
	img_unpack *u = img_unpack_new(fd, &lo);
	r = apply_layer(s, ref, d, diff_id, u, err);
	img_unpack_free(u);
	if (r == 0 && rename(tmp, final) < 0 && errno != ENOTEMPTY && errno != EEXIST)
		r = sp_error_sys(err, errno, "layer cache: rename into `%s`", final);
	if (r < 0 || access(tmp, F_OK) == 0)
		sp_rm_rf(tmp, NULL); /* failed, or another pull won the race */
	if (r < 0) {
		free(final);
		return r;
	}
	*out = final;
	return 0;
}

static int mount_overlay(const char *dest, char **layers, size_t n, sp_err **err)
{
	_cleanup_free_ char *rw = sp_xasprintf("%s.rw", dest);
	_cleanup_free_ char *upper = sp_xasprintf("%s/upper", rw);
	_cleanup_free_ char *work = sp_xasprintf("%s/work", rw);
	sp_buf opt = SP_BUF_INIT;
	sp_buf_printf(&opt, "lowerdir=");
	for (size_t i = n; i-- > 0;) {
		if (strchr(layers[i], ',') || strchr(layers[i], ':')) {
			sp_buf_free(&opt);
			return sp_error(err, SP_ERR_INVALID, "layer cache path has , or :");
		}
		sp_buf_printf(&opt, "%s%s", layers[i], i ? ":" : "");
	}
	sp_buf_printf(&opt, ",upperdir=%s,workdir=%s", upper, work);
	sp_buf_terminate(&opt);
	int r = 0;
	if (opt.len >= 4000)
		r = sp_error(err, SP_ERR_LIMIT, "overlay options too long");
	else if (mkdir(rw, 0700) < 0 || mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0 ||
		 mkdir(dest, 0755) < 0)
		r = sp_error_sys(err, errno, "create the overlay directories for `%s`", dest);
	else if (mount("overlay", dest, "overlay", 0, (char *)opt.data) < 0)
		r = sp_error_sys(err, errno, "mount overlay on `%s`", dest);
	sp_buf_free(&opt);
	if (r < 0) {
		rmdir(dest);
		sp_rm_rf(rw, NULL);
	}
	return r;
}

int sp_image_rootfs_remove(const char *dest_root, sp_err **err)
{
	if (umount2(dest_root, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		return sp_error_sys(err, errno, "unmount `%s`", dest_root);
	_cleanup_free_ char *rw = sp_xasprintf("%s.rw", dest_root);
	int r = sp_rm_rf(dest_root, err);
	if (r == 0 && access(rw, F_OK) == 0)
		r = sp_rm_rf(rw, err);
	return r;
}

int sp_image_pull(sp_image_store *s, const char *ref_s, const char *expected,
		  const char *dest, const struct sp_image_limits *limits,
		  char **config_json, sp_err **err)
{
	if (limits && limits->version != SP_IMAGE_LIMITS_VERSION)
		return sp_error(err, SP_ERR_INVALID, "image limits: unknown version %u",
				limits->version);
	if (!expected || !sp_image_digest_valid(expected))
		return sp_error(err, SP_ERR_DENIED,
				"image %s: no pinned sha256 manifest digest from the policy; refused",
				ref_s);
	_cleanup_image_ref_ sp_image_ref *ref = NULL;
	int r = sp_image_ref_parse(&ref, ref_s, err);
	if (r < 0)
		return r;
	if (ref->digest && strcmp(ref->digest, expected))
		return sp_error(err, SP_ERR_DENIED,
				"image %s: its digest differs from the policy's pinned %s; refused",
				ref_s, expected);
	struct stat st;
	if (lstat(dest, &st) == 0)
		return sp_error(err, SP_ERR_EXISTS, "image rootfs `%s` already exists", dest);
	struct resolved res = {0};
	if ((r = resolve(s, ref, expected, &res, err)) < 0) {
		resolved_clear(&res);
		return r;
	}
	struct img_unpack_opts o = unpack_opts(limits);
	uint64_t t0 = sp_now_ns();
	if (limits && limits->layer_cache) {
		char **dirs = sp_xcalloc(res.m.nlayers + 1, sizeof(char *));
		for (size_t i = 0; r == 0 && i < res.m.nlayers; i++)
			r = cache_layer(s, ref, limits->layer_cache, &res.m.layers[i],
					res.diff_ids[i], &o, &dirs[i], err);
		if (r == 0 && res.m.nlayers) {
			_cleanup_err_ sp_err *merr = NULL;
			if (mount_overlay(dest, dirs, res.m.nlayers, &merr) == 0) {
				sp_strv_freep(&dirs);
				goto done;
			}
			sp_log_info("image: overlay unavailable (%s); copying the layers",
				    sp_err_msg(merr));
		}
		/* Fallback: copy each cached layer onto a flat rootfs. */
		_cleanup_free_ char *tmp = NULL;
		_cleanup_close_ int fd = -1;
		if (r == 0)
			r = sibling_tmp(&tmp, &fd, dest, err);
		if (r == 0) {
			img_unpack *u = img_unpack_new(fd, &o);
			for (size_t i = 0; r == 0 && i < res.m.nlayers; i++) {
				_cleanup_close_ int lfd = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
				r = lfd < 0 ? sp_error_sys(err, errno, "open `%s`", dirs[i])
					    : img_unpack_merge_tree(u, lfd, err);
			}
			img_unpack_free(u);
			if (r == 0 && rename(tmp, dest) < 0)
				r = sp_error_sys(err, errno, "rename into `%s`", dest);
			if (r < 0)
				sp_rm_rf(tmp, NULL);
		}
		sp_strv_freep(&dirs);
	} else {
		_cleanup_free_ char *tmp = NULL;
		_cleanup_close_ int fd = -1;
		r = sibling_tmp(&tmp, &fd, dest, err);
		if (r == 0) {
			img_unpack *u = img_unpack_new(fd, &o);
			for (size_t i = 0; r == 0 && i < res.m.nlayers; i++)
				r = apply_layer(s, ref, &res.m.layers[i], res.diff_ids[i], u, err);
			img_unpack_free(u);
			if (r == 0 && rename(tmp, dest) < 0)
				r = sp_error_sys(err, errno, "rename into `%s`", dest);
			if (r < 0)
				sp_rm_rf(tmp, NULL);
		}
	}
	if (r < 0) {
		resolved_clear(&res);
		return sp_error_wrap(err, "image %s", ref_s);
	}
done:
	sp_log_debug("image: %s unpacked in %.2fs", ref_s, (double)(sp_now_ns() - t0) / 1e9);
	if (config_json)
		*config_json = (char *)sp_steal_ptr(&res.config);
	resolved_clear(&res);
	return 0;
}
