/* SPDX-License-Identifier: Apache-2.0 */
/* Host side: the read-only image disk of a pod whose images the node
 * already pulled (containerd's content store). The disk is a sparse file
 * holding a tar of an OCI image layout that grows: each container's image
 * blobs (index, manifest, config, layers, exactly the bytes containerd
 * holds) are appended before its CreateContainer. The guest reads the tar
 * afresh at every pull and verifies every blob against the digest its
 * policy pins, so nothing read here is checked here: a host-side check
 * would only move the refusal out of the TCB (docs/images.md). */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "image-internal.h"
#include "sealpod/file.h"
#include "sealpod/json.h"

#define BLOCK 512
#define MAX_BLOBS 4096

struct sp_image_disk {
	char *path;
	int fd;
	uint64_t end;   /* offset of the end-of-archive */
	uint64_t size;  /* the device size the guest sees */
	pthread_mutex_t mu;
	size_t nblobs;
	char **blobs;   /* digests already on the disk */
};

static bool disk_has(const sp_image_disk *d, const char *digest)
{
	for (size_t i = 0; i < d->nblobs; i++)
		if (!strcmp(d->blobs[i], digest))
			return true;
	return false;
}

static int put_header(int fd, uint64_t off, const char *name, char type,
		      uint64_t size, sp_err **err)
{
	if (lseek(fd, (off_t)off, SEEK_SET) < 0)
		return sp_error_sys(err, errno, "image disk: seek");
	return img_tar_write_header(fd, name, type, size, type == '5' ? 0755 : 0644, err);
}

static int put_data(int fd, uint64_t off, const void *data, size_t len,
		    sp_err **err)
{
	if (pwrite(fd, data, len, (off_t)off) != (ssize_t)len)
		return sp_error_sys(err, errno ? errno : EIO, "image disk: write");
	return 0;
}

static uint64_t padded(uint64_t n)
{
	return (n + BLOCK - 1) / BLOCK * BLOCK;
}

int sp_image_disk_create(sp_image_disk **out, const char *path, uint64_t size,
			 sp_err **err)
{
	if (size < (1u << 20))
		size = 1u << 20;
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return sp_error_sys(err, errno, "image disk: create `%s`", path);
	/* Sparse: only what is appended takes space. */
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		unlink(path);
		return sp_error_sys(err, e, "image disk: size `%s` to %llu bytes", path,
				    (unsigned long long)size);
	}
	const char *lay = "{\"imageLayoutVersion\":\"1.0.0\"}";
	/* No image is named: the guest fetches by the pinned digest. */
	const char *idx = "{\"manifests\":[],\"schemaVersion\":2}";
	uint64_t off = 0;
	int r = put_header(fd, off, "oci-layout", '0', strlen(lay), err);
	if (r == 0)
		r = put_data(fd, off + BLOCK, lay, strlen(lay), err);
	off += BLOCK + padded(strlen(lay));
	if (r == 0)
		r = put_header(fd, off, "index.json", '0', strlen(idx), err);
	if (r == 0)
		r = put_data(fd, off + BLOCK, idx, strlen(idx), err);
	off += BLOCK + padded(strlen(idx));
	if (r == 0)
		r = put_header(fd, off, "blobs/sha256/", '5', 0, err);
	off += BLOCK;
	if (r < 0) {
		unlink(path);
		return sp_error_wrap(err, "image disk `%s`", path);
	}
	sp_image_disk *d = sp_xzalloc(sizeof(*d));
	d->path = sp_xstrdup(path);
	d->fd = sp_steal_fd(&fd);
	d->end = off;
	d->size = size;
	pthread_mutex_init(&d->mu, NULL);
	*out = d;
	return 0;
}

const char *sp_image_disk_path(const sp_image_disk *d)
{
	return d->path;
}

void sp_image_disk_free(sp_image_disk *d)
{
	if (!d)
		return;
	close(d->fd);
	unlink(d->path);
	for (size_t i = 0; i < d->nblobs; i++)
		free(d->blobs[i]);
	free(d->blobs);
	pthread_mutex_destroy(&d->mu);
	free(d->path);
	free(d);
}

struct plan {
	char **digests;
	size_t n;
};

static void plan_add(struct plan *p, const char *digest)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->digests[i], digest))
			return;
	p->digests = sp_xrealloc(p->digests, (p->n + 1) * sizeof(char *));
	p->digests[p->n++] = sp_xstrdup(digest);
}

static void plan_clear(struct plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->digests[i]);
	free(p->digests);
}

static char *content_path(const char *root, const char *digest)
{
	return sp_xasprintf("%s/blobs/sha256/%s", root, digest + 7);
}

/* The blobs of the image at digest, as containerd holds them. The host
 * parses only to know which blobs to offer; the guest decides. */
static int plan_image(struct plan *p, const char *root, const char *image,
		      const char *digest, int depth, sp_err **err)
{
	if (!sp_image_digest_valid(digest))
		return sp_error(err, SP_ERR_PARSE, "image %s: `%s` is not a sha256 digest",
				image, digest);
	_cleanup_free_ char *path = content_path(root, digest);
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	_cleanup_err_ sp_err *e = NULL;
	if (sp_read_file(&data, &len, path, IMG_MAX_JSON, &e) < 0)
		return sp_error(err, e->sys_errno == ENOENT ? SP_ERR_NOT_FOUND : e->code,
				"image %s: containerd's content store %s has no readable blob %s (%s)",
				image, root, digest, sp_err_msg(e));
	plan_add(p, digest);
	int kind;
	if (img_manifest_kind(data, len, NULL, &kind, &e) < 0)
		return 0; /* the guest says what is wrong with it */
	if (kind == IMG_KIND_INDEX) {
		struct img_desc sel = {0};
		if (depth > 0 || img_index_select(&sel, data, len, &e) < 0)
			return 0;
		int r = plan_image(p, root, image, sel.digest, depth + 1, err);
		img_desc_clear(&sel);
		return r;
	}
	struct img_manifest m;
	if (img_manifest_parse(&m, data, len, &e) < 0)
		return 0;
	plan_add(p, m.config.digest);
	for (size_t i = 0; i < m.nlayers; i++)
		plan_add(p, m.layers[i].digest);
	img_manifest_clear(&m);
	for (size_t i = 0; i < p->n; i++) {
		_cleanup_free_ char *bp = content_path(root, p->digests[i]);
		struct stat st;
		if (stat(bp, &st) < 0 || !S_ISREG(st.st_mode))
			return sp_error(err, SP_ERR_NOT_FOUND,
					"image %s: containerd's content store %s has no blob %s (a layer containerd discarded after unpacking, or an image pulled for another platform)",
					image, root, p->digests[i]);
	}
	return 0;
}

/* Copies size bytes of src to fd at off (copy_file_range: a reflink or
 * an in-kernel copy where the filesystem can). */
static int copy_at(int fd, uint64_t off, int src, uint64_t size, sp_err **err)
{
	loff_t in = 0, o = (loff_t)off;
	uint64_t left = size;
	while (left > 0) {
		ssize_t n = copy_file_range(src, &in, fd, &o, left > (1u << 30) ? (1u << 30) : left, 0);
		if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP ||
			      errno == EINVAL)) {
			/* Plain copy. */
			uint8_t buf[1 << 16];
			ssize_t k = pread(src, buf, left > sizeof(buf) ? sizeof(buf) : left, in);
			if (k <= 0)
				return sp_error_sys(err, k < 0 ? errno : EIO, "image disk: read");
			if (pwrite(fd, buf, (size_t)k, o) != k)
				return sp_error_sys(err, errno ? errno : EIO, "image disk: write");
			in += k;
			o += k;
			left -= (uint64_t)k;
			continue;
		}
		if (n < 0)
			return sp_error_sys(err, errno, "image disk: copy");
		if (n == 0)
			return sp_error(err, SP_ERR_STATE, "image disk: the blob shrank while it was copied");
		left -= (uint64_t)n;
	}
	return 0;
}

int sp_image_disk_add_content(sp_image_disk *d, const char *content_root,
			      const char *image, const char *digest, sp_err **err)
{
	struct plan p = {0};
	int r = plan_image(&p, content_root, image, digest, 0, err);
	if (r < 0) {
		plan_clear(&p);
		return r;
	}
	pthread_mutex_lock(&d->mu);
	/* Members are written past the end-of-archive, the first header
	 * last: a guest reading the disk meanwhile sees all of them or none. */
	uint64_t off = d->end, first = UINT64_MAX, first_size = 0;
	size_t added = 0;
	char **names = sp_xcalloc(p.n + 1, sizeof(char *));
	for (size_t i = 0; r == 0 && i < p.n; i++) {
		if (disk_has(d, p.digests[i]))
			continue;
		_cleanup_free_ char *bp = content_path(content_root, p.digests[i]);
		_cleanup_close_ int src = open(bp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		struct stat st;
		if (src < 0 || fstat(src, &st) < 0) {
			r = sp_error_sys(err, errno, "image %s: open blob %s in containerd's content store",
					 image, p.digests[i]);
			break;
		}
		uint64_t sz = (uint64_t)st.st_size;
		if (off + BLOCK + padded(sz) + 2 * BLOCK > d->size) {
			r = sp_error(err, SP_ERR_LIMIT,
				     "image %s: the pod's image disk (%llu bytes) is full; the pod's images are too large",
				     image, (unsigned long long)d->size);
			break;
		}
		_cleanup_free_ char *name = sp_xasprintf("blobs/sha256/%s", p.digests[i] + 7);
		if ((r = copy_at(d->fd, off + BLOCK, src, sz, err)) < 0)
			break;
		if (first == UINT64_MAX) {
			first = off;
			first_size = sz;
		} else if ((r = put_header(d->fd, off, name, '0', sz, err)) < 0)
			break;
		names[added++] = sp_steal_ptr(&name);
		off += BLOCK + padded(sz);
	}
	if (r == 0 && added) {
		/* Two zero blocks end the archive: the file is sparse and was
		 * never written there, but say it anyway. */
		static const uint8_t zero[2 * BLOCK];
		r = put_data(d->fd, off, zero, sizeof(zero), err);
		if (r == 0)
			r = put_header(d->fd, first, names[0], '0', first_size, err);
	}
	if (r == 0) {
		d->end = off;
		for (size_t i = 0; i < added; i++) {
			d->blobs = sp_xrealloc(d->blobs, (d->nblobs + 1) * sizeof(char *));
			d->blobs[d->nblobs++] = sp_xasprintf("sha256:%s", names[i] + 13);
		}
	}
	pthread_mutex_unlock(&d->mu);
	for (size_t i = 0; i < p.n; i++)
		free(names[i]);
	free(names);
	plan_clear(&p);
	return r;
}
