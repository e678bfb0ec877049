/* SPDX-License-Identifier: Apache-2.0 */
/* Image stores the host hands over read-only: an OCI image layout or a
 * docker-archive, as a directory or as a tar read straight from a file or
 * block device (no filesystem). Nothing here is trusted: names are
 * resolved beneath the store, sizes are bounded, and the caller verifies
 * every blob against its digest. A docker-archive has no manifest, so
 * one is synthesised from the config (layers are its uncompressed
 * diff_ids); the host-side import writes the same bytes. */
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "image-internal.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"

#define MAX_TAR_FILES 100000

struct tar_file {
	char *name;
	uint64_t off, size;
};

struct dimage { /* one image of a docker-archive */
	char **tags;       /* RepoTags, may be empty */
	char *config_path;
	char *config_digest;
	int64_t config_size;
	size_t nlayers;
	char **layer_paths;
	char **diff_ids;
	int64_t *layer_sizes;
	char *manifest;    /* synthesised */
	char *manifest_digest;
};

struct layout {
	sp_image_store s;
	bool docker;       /* docker-archive (manifest.json) */
	int dirfd;         /* dir store */
	int fd;            /* tar store */
	size_t nfiles;
	struct tar_file *files;
	size_t nimages;
	struct dimage *images;
};

static int file_find(struct layout *l, const char *name, struct tar_file **out)
{
	for (size_t i = 0; i < l->nfiles; i++)
		if (!strcmp(l->files[i].name, name)) {
			*out = &l->files[i];
			return 0;
		}
	return SP_ERR_NOT_FOUND;
}

/* Opens a file of the store. *size is its length (-1 if unknown). */
static int open_file(struct layout *l, const char *name, img_stream **out,
		     int64_t *size, sp_err **err)
{
	_cleanup_free_ char *clean = img_clean_path(name, err);
	if (!clean)
		return sp_error_wrap(err, "image store %s", l->s.spec);
	if (l->dirfd < 0) {
		struct tar_file *f;
		if (file_find(l, clean, &f) < 0)
			return sp_error(err, SP_ERR_NOT_FOUND,
					"image store %s has no file `%s`", l->s.spec, clean);
		*out = img_fd_stream(l->fd, f->off, f->size);
		*size = (int64_t)f->size;
		return 0;
	}
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, l->dirfd, clean, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		fd = openat(l->dirfd, clean, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return sp_error(err, SP_ERR_NOT_FOUND,
					"image store %s has no file `%s`", l->s.spec, clean);
		return sp_error_sys(err, errno, "image store %s: open `%s`",
				    l->s.spec, clean);
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return sp_error(err, SP_ERR_PARSE, "image store %s: `%s` is not a regular file",
				l->s.spec, clean);
	}
	*out = img_fd_stream_take(fd);
	*size = st.st_size;
	return 0;
}

static int read_small(struct layout *l, const char *name, uint8_t **data,
		      size_t *len, sp_err **err)
{
	_cleanup_stream_ img_stream *s = NULL;
	int64_t size;
	int r = open_file(l, name, &s, &size, err);
	if (r < 0)
		return r;
	if (size > IMG_MAX_JSON)
		return sp_error(err, SP_ERR_LIMIT, "image store %s: `%s` is larger than %u bytes",
				l->s.spec, name, IMG_MAX_JSON);
	uint8_t *buf = sp_xmalloc((size_t)size + 1);
	if ((r = img_read_full(s, buf, (size_t)size, name, err)) < 0) {
		free(buf);
		return r;
	}
	buf[size] = 0;
	*data = buf;
	*len = (size_t)size;
	return 0;
}

static char *blob_path(const char *digest)
{
	return sp_xasprintf("blobs/sha256/%s", digest + 7);
}

/* Whether an annotation names ref: full names compared normalised. */
static bool full_name_matches(const char *name, const sp_image_ref *ref)
{
	_cleanup_image_ref_ sp_image_ref *n = NULL;
	if (!name || (!strchr(name, '/') && !strchr(name, ':')))
		return false;
	if (sp_image_ref_parse(&n, name, NULL) < 0)
		return false;
	return !strcmp(n->registry, ref->registry) &&
	       !strcmp(n->repository, ref->repository) && n->tag && ref->tag &&
	       !strcmp(n->tag, ref->tag);
}

static int oci_find(struct layout *l, const sp_image_ref *ref, char **digest,
		    sp_err **err)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	int r = read_small(l, "index.json", &data, &len, err);
	if (r < 0)
		return r;
	_cleanup_json_ json_t *j = NULL;
	json_t *ms = NULL;
	if ((r = sp_json_parse(&j, data, len, "index.json", err)) < 0 ||
	    (r = sp_json_get_array(j, "manifests", true, &ms, "index.json", err)) < 0)
		return r;
	/* Pass 0: a full name matches; pass 1: a bare tag (umoci, skopeo). */
	for (int pass = 0; pass < 2; pass++) {
		const char *found = NULL;
		size_t i;
		json_t *m;
		json_array_foreach(ms, i, m) {
			json_t *a = json_object_get(m, "annotations");
			const char *cn = json_string_value(json_object_get(a, "io.containerd.image.name"));
			const char *rn = json_string_value(json_object_get(a, "org.opencontainers.image.ref.name"));
			const char *dg = json_string_value(json_object_get(m, "digest"));
			bool match = pass == 0 ? (full_name_matches(cn, ref) ||
						  full_name_matches(rn, ref))
					       : (!cn && rn && ref->tag && !strcmp(rn, ref->tag));
			if (!match)
				continue;
			if (!sp_image_digest_valid(dg))
				return sp_error(err, SP_ERR_PARSE,
						"image store %s: index.json has a bad digest", l->s.spec);
			if (found && strcmp(found, dg))
				return sp_error(err, SP_ERR_PARSE,
						"image store %s: `%s` names two different images; pin a digest",
						l->s.spec, ref->tag);
			found = dg;
		}
		if (found) {
			*digest = sp_xstrdup(found);
			return 0;
		}
	}
	_cleanup_free_ char *s = sp_image_ref_str(ref);
	return sp_error(err, SP_ERR_NOT_FOUND, "image store %s has no image `%s`",
			l->s.spec, s);
}

static int layout_get_manifest(sp_image_store *s, const sp_image_ref *ref,
			       uint8_t **data, size_t *len, char **media_type,
			       sp_err **err)
{
	struct layout *l = (struct layout *)s;
	*media_type = NULL;
	if (l->docker) {
		for (size_t i = 0; i < l->nimages; i++) {
			struct dimage *d = &l->images[i];
			bool match = ref->digest ? !strcmp(ref->digest, d->manifest_digest) : false;
			for (size_t t = 0; !ref->digest && d->tags[t]; t++)
				match = match || full_name_matches(d->tags[t], ref);
			if (match) {
				*data = (uint8_t *)sp_xstrdup(d->manifest);
				*len = strlen(d->manifest);
				*media_type = sp_xstrdup(IMG_MT_OCI_MANIFEST);
				return 0;
			}
		}
		_cleanup_free_ char *rs = sp_image_ref_str(ref);
		return sp_error(err, SP_ERR_NOT_FOUND, "image store %s has no image `%s`",
				l->s.spec, rs);
	}
	_cleanup_free_ char *digest = NULL;
	if (ref->digest)
		digest = sp_xstrdup(ref->digest);
	else {
		int r = oci_find(l, ref, &digest, err);
		if (r < 0)
			return r;
	}
	_cleanup_free_ char *p = blob_path(digest);
	return read_small(l, p, data, len, err);
}

static int layout_open_blob(sp_image_store *s, const sp_image_ref *ref,
			    const char *digest, int64_t want, img_stream **out,
			    sp_err **err)
{
	struct layout *l = (struct layout *)s;
	int64_t size;
	if (l->docker) {
		for (size_t i = 0; i < l->nimages; i++) {
			struct dimage *d = &l->images[i];
			if (!strcmp(digest, d->manifest_digest)) {
				*out = img_mem_stream(d->manifest, strlen(d->manifest));
				return 0;
			}
			if (!strcmp(digest, d->config_digest))
				return open_file(l, d->config_path, out, &size, err);
			for (size_t k = 0; k < d->nlayers; k++)
				if (!strcmp(digest, d->diff_ids[k]))
					return open_file(l, d->layer_paths[k], out, &size, err);
		}
		return sp_error(err, SP_ERR_NOT_FOUND, "image store %s has no blob %s",
				l->s.spec, digest);
	}
	_cleanup_free_ char *p = blob_path(digest);
	return open_file(l, p, out, &size, err);
}

static bool has_file(struct layout *l, const char *name)
{
	if (l->dirfd >= 0)
		return faccessat(l->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	struct tar_file *f;
	return file_find(l, name, &f) == 0;
}

/* A docker-archive keys its layers by diff_id already; an OCI layout
 * that sealpod packed may hold a compressed layer's diff_id as well. */
static bool layout_has_blob(sp_image_store *s, const char *digest)
{
	struct layout *l = (struct layout *)s;
	if (l->docker || !sp_image_digest_valid(digest))
		return false;
	_cleanup_free_ char *p = blob_path(digest);
	return has_file(l, p);
}

static void dimage_clear(struct dimage *d)
{
	sp_strv_freep(&d->tags);
	free(d->config_path);
	free(d->config_digest);
	sp_strv_freep(&d->layer_paths);
	sp_strv_freep(&d->diff_ids);
	free(d->layer_sizes);
	free(d->manifest);
	free(d->manifest_digest);
}

static void layout_close(sp_image_store *s)
{
	struct layout *l = (struct layout *)s;
	if (l->dirfd >= 0)
		close(l->dirfd);
	if (l->fd >= 0)
		close(l->fd);
	for (size_t i = 0; i < l->nfiles; i++)
		free(l->files[i].name);
	free(l->files);
	for (size_t i = 0; i < l->nimages; i++)
		dimage_clear(&l->images[i]);
	free(l->images);
	free(l->s.spec);
	free(l);
}

static const struct img_store_ops layout_ops = {
	.get_manifest = layout_get_manifest,
	.open_blob = layout_open_blob,
	.has_blob = layout_has_blob,
	.close = layout_close,
};

/* docker-archive: manifest.json is [{Config, RepoTags, Layers}]. */
static int docker_load(struct layout *l, sp_err **err)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	int r = read_small(l, "manifest.json", &data, &len, err);
	if (r < 0)
		return r;
	_cleanup_json_ json_t *j = NULL;
	if ((r = sp_json_parse(&j, data, len, "manifest.json", err)) < 0)
		return r;
	if (!json_is_array(j) || json_array_size(j) > 1024)
		return sp_error(err, SP_ERR_PARSE,
				"image store %s: manifest.json is not an array of images", l->s.spec);
	l->images = sp_xcalloc(json_array_size(j) + 1, sizeof(*l->images));
	size_t i;
	json_t *m;
	json_array_foreach(j, i, m) {
		struct dimage *d = &l->images[l->nimages++];
		const char *cfg = NULL;
		if ((r = sp_json_get_string(m, "Config", true, &cfg, "manifest.json[]", err)) < 0 ||
		    (r = sp_json_get_strv(m, "Layers", true, &d->layer_paths, "manifest.json[]", err)) < 0)
			return r;
		if (json_is_null(json_object_get(m, "RepoTags")))
			d->tags = sp_xzalloc(sizeof(char *));
		else if ((r = sp_json_get_strv(m, "RepoTags", false, &d->tags, "manifest.json[]", err)) < 0)
			return r;
		if (!d->tags)
			d->tags = sp_xzalloc(sizeof(char *));
		d->config_path = sp_xstrdup(cfg);
		_cleanup_free_ uint8_t *c = NULL;
		size_t clen;
		if ((r = read_small(l, cfg, &c, &clen, err)) < 0)
			return r;
		d->config_digest = sp_sha256_digest_str(c, clen);
		d->config_size = (int64_t)clen;
		if ((r = img_config_diff_ids(&d->diff_ids, c, clen, err)) < 0)
			return sp_error_wrap(err, "image store %s: %s", l->s.spec, cfg);
		while (d->layer_paths[d->nlayers])
			d->nlayers++;
		size_t nd = 0;
		while (d->diff_ids[nd])
			nd++;
		if (nd != d->nlayers)
			return sp_error(err, SP_ERR_PARSE,
					"image store %s: image %zu has %zu layers but its config lists %zu diff_ids",
					l->s.spec, i, d->nlayers, nd);
		d->layer_sizes = sp_xcalloc(d->nlayers + 1, sizeof(int64_t));
		for (size_t k = 0; k < d->nlayers; k++) {
			_cleanup_stream_ img_stream *s = NULL;
			if ((r = open_file(l, d->layer_paths[k], &s, &d->layer_sizes[k], err)) < 0)
				return r;
		}
		d->manifest = img_docker_archive_manifest(d->config_digest, d->config_size,
							  d->diff_ids, d->layer_sizes,
							  d->nlayers);
		d->manifest_digest = sp_sha256_digest_str(d->manifest, strlen(d->manifest));
	}
	return 0;
}

static int finish_open(struct layout *l, sp_image_store **out, sp_err **err)
{
	l->s.ops = &layout_ops;
	if (has_file(l, "oci-layout") && has_file(l, "index.json")) {
		l->docker = false;
	} else if (has_file(l, "manifest.json")) {
		l->docker = true;
		int r = docker_load(l, err);
		if (r < 0) {
			layout_close(&l->s);
			return r;
		}
	} else {
		int r = sp_error(err, SP_ERR_PARSE,
				 "image store %s is neither an OCI image layout (oci-layout, index.json) nor a docker-archive (manifest.json)",
				 l->s.spec);
		layout_close(&l->s);
		return r;
	}
	*out = &l->s;
	return 0;
}

int img_layout_open_dir(sp_image_store **out, const char *path, sp_err **err)
{
	struct layout *l = sp_xzalloc(sizeof(*l));
	l->fd = -1;
	l->s.spec = sp_xasprintf("dir:%s", path);
	l->dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (l->dirfd < 0) {
		int r = sp_error_sys(err, errno, "image store: open directory `%s`", path);
		layout_close(&l->s);
		return r;
	}
	return finish_open(l, out, err);
}

int img_layout_open_tar(sp_image_store **out, const char *path, sp_err **err)
{
	struct layout *l = sp_xzalloc(sizeof(*l));
	l->dirfd = -1;
	l->s.spec = sp_xasprintf("tar:%s", path);
	l->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int r;
	if (l->fd < 0) {
		r = sp_error_sys(err, errno, "image store: open `%s`", path);
		layout_close(&l->s);
		return r;
	}
	/* A pod's image disk grows while the pod runs (the host appends
	 * each container's blobs, disk.c): drop what the kernel cached of
	 * the device, so the index below reads what is there now. Only
	 * clean pages of a read-only device go; failure just means a
	 * stale view, which the digests catch. */
	struct stat dst;
	if (fstat(l->fd, &dst) == 0 && S_ISBLK(dst.st_mode))
		(void)ioctl(l->fd, BLKFLSBUF, 0);
	/* lseek gives a block device's size too. */
	off_t end = lseek(l->fd, 0, SEEK_END);
	if (end < 0) {
		r = sp_error_sys(err, errno, "image store: size of `%s`", path);
		layout_close(&l->s);
		return r;
	}
	_cleanup_stream_ img_stream *in = img_fd_stream(l->fd, 0, (uint64_t)end);
	img_tar *t = img_tar_new(in);
	const struct img_tar_entry *e;
	while ((r = img_tar_next(t, &e, err)) > 0) {
		if (e->type != '0')
			continue;
		char *name = img_clean_path(e->path, err);
		if (!name) {
			r = SP_ERR_DENIED;
			break;
		}
		struct tar_file *dup;
		if (file_find(l, name, &dup) == 0) {
			r = sp_error(err, SP_ERR_PARSE,
				     "image store %s: `%s` appears twice in the archive; refused as ambiguous",
				     path, name);
			free(name);
			break;
		}
		if (l->nfiles >= MAX_TAR_FILES) {
			r = sp_error(err, SP_ERR_LIMIT, "image store %s: too many files", path);
			free(name);
			break;
		}
		if (l->nfiles % 64 == 0)
			l->files = sp_xrealloc(l->files, (l->nfiles + 64) * sizeof(*l->files));
		l->files[l->nfiles++] = (struct tar_file){name, e->data_offset, e->size};
	}
	img_tar_free(t);
	if (r < 0) {
		sp_error_wrap(err, "image store %s", path);
		layout_close(&l->s);
		return r;
	}
	return finish_open(l, out, err);
}

int img_layout_list(sp_image_store *s, char ***names, char ***digests,
		    sp_err **err)
{
	if (s->ops != &layout_ops)
		return sp_error(err, SP_ERR_UNSUPPORTED, "only local stores can list images");
	struct layout *l = (struct layout *)s;
	size_t n = 0, cap = 8;
	char **nv = sp_xcalloc(cap + 1, sizeof(char *));
	char **dv = sp_xcalloc(cap + 1, sizeof(char *));
#define ADD(nm, dg)                                                            \
	do {                                                                   \
		if (n == cap) {                                                \
			cap *= 2;                                              \
			nv = sp_xrealloc(nv, (cap + 1) * sizeof(char *));      \
			dv = sp_xrealloc(dv, (cap + 1) * sizeof(char *));      \
		}                                                              \
		nv[n] = sp_xstrdup(nm);                                        \
		dv[n++] = sp_xstrdup(dg);                                      \
		nv[n] = dv[n] = NULL;                                          \
	} while (0)
	if (l->docker) {
		for (size_t i = 0; i < l->nimages; i++) {
			if (!l->images[i].tags[0])
				ADD("", l->images[i].manifest_digest);
			for (size_t t = 0; l->images[i].tags[t]; t++)
				ADD(l->images[i].tags[t], l->images[i].manifest_digest);
		}
	} else {
		_cleanup_free_ uint8_t *data = NULL;
		size_t len;
		_cleanup_json_ json_t *j = NULL;
		json_t *ms = NULL;
		int r;
		if ((r = read_small(l, "index.json", &data, &len, err)) < 0 ||
		    (r = sp_json_parse(&j, data, len, "index.json", err)) < 0 ||
		    (r = sp_json_get_array(j, "manifests", true, &ms, "index.json", err)) < 0) {
			sp_strv_freep(&nv);
			sp_strv_freep(&dv);
			return r;
		}
		size_t i;
		json_t *m;
		json_array_foreach(ms, i, m) {
			json_t *a = json_object_get(m, "annotations");
			const char *cn = json_string_value(json_object_get(a, "io.containerd.image.name"));
			const char *rn = json_string_value(json_object_get(a, "org.opencontainers.image.ref.name"));
			const char *dg = json_string_value(json_object_get(m, "digest"));
			if (!sp_image_digest_valid(dg))
				continue;
			ADD(cn ? cn : rn ? rn : "", dg);
		}
	}
#undef ADD
	*names = nv;
	*digests = dv;
	return 0;
}
