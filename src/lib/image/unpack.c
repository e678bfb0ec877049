/* SPDX-License-Identifier: Apache-2.0 */
/* The safe unpacker. Every name is cleaned (no "..", nothing absolute);
 * every parent directory is opened with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) from the root, so a symlink
 * that leads out of the root makes the entry fail instead of writing
 * through it; the last component is always created with *at() calls that
 * do not follow symlinks. Without openat2 (ENOSYS) the fallback walks the
 * path one component at a time with O_NOFOLLOW and refuses any symlink in
 * a parent position. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "image-internal.h"
#include "sealpod/file.h"
#include "sealpod/log.h"

#define OVL_OPAQUE "trusted.overlay.opaque"

/* A set of the paths a layer created (whiteouts and opaque markers only
 * hide what the layers below made). */
struct pathset {
	char **slot;
	size_t cap, len;
};

struct img_unpack {
	int root;
	struct img_unpack_opts o;
	uint64_t bytes, entries;
	struct pathset made;
	uint8_t *buf;  /* file data copy buffer, UNPACK_BUF bytes, lazily */
};

#define UNPACK_BUF (256u << 10)

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static bool set_has(const struct pathset *ps, const char *p)
{
	if (!ps->cap)
		return false;
	for (size_t i = fnv(p) & (ps->cap - 1);; i = (i + 1) & (ps->cap - 1)) {
		if (!ps->slot[i])
			return false;
		if (!strcmp(ps->slot[i], p))
			return true;
	}
}

/* Returns false if p was there already. */
static bool set_add1(struct pathset *ps, const char *p)
{
	if (set_has(ps, p))
		return false;
	if ((ps->len + 1) * 2 > ps->cap) {
		struct pathset n = {sp_xcalloc(ps->cap ? ps->cap * 2 : 64,
					       sizeof(char *)),
				    ps->cap ? ps->cap * 2 : 64, 0};
		for (size_t i = 0; i < ps->cap; i++)
			if (ps->slot[i]) {
				size_t j = fnv(ps->slot[i]) & (n.cap - 1);
				while (n.slot[j])
					j = (j + 1) & (n.cap - 1);
				n.slot[j] = ps->slot[i];
				n.len++;
			}
		free(ps->slot);
		*ps = n;
	}
	size_t i = fnv(p) & (ps->cap - 1);
	while (ps->slot[i])
		i = (i + 1) & (ps->cap - 1);
	ps->slot[i] = sp_xstrdup(p);
	ps->len++;
	return true;
}

/* Adds p and its ancestors. */
static void set_add(struct pathset *ps, const char *p)
{
	_cleanup_free_ char *c = sp_xstrdup(p);
	for (;;) {
		/* An ancestor already there brought its own ancestors. */
		if (!set_add1(ps, c))
			return;
		char *s = strrchr(c, '/');
		if (!s)
			return;
		*s = 0;
	}
}

static void set_clear(struct pathset *ps)
{
	for (size_t i = 0; i < ps->cap; i++)
		free(ps->slot[i]);
	free(ps->slot);
	memset(ps, 0, sizeof(*ps));
}

img_unpack *img_unpack_new(int root_fd, const struct img_unpack_opts *o)
{
	img_unpack *u = sp_xzalloc(sizeof(*u));
	u->root = root_fd;
	u->o = *o;
	return u;
}

void img_unpack_free(img_unpack *u)
{
	if (!u)
		return;
	set_clear(&u->made);
	free(u->buf);
	free(u);
}

uint64_t img_unpack_bytes(const img_unpack *u)
{
	return u->bytes;
}

char *img_clean_path(const char *path, sp_err **err)
{
	if (path[0] == '/') {
		sp_error(err, SP_ERR_DENIED,
			 "archive entry `%s` has an absolute path; refused (entries must be relative to the root filesystem)",
			 path);
		return NULL;
	}
	size_t n = strlen(path);
	char *out = sp_xmalloc(n + 1);
	size_t o = 0;
	for (const char *p = path; *p;) {
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == 2 && p[0] == '.' && p[1] == '.') {
			free(out);
			sp_error(err, SP_ERR_DENIED,
				 "archive entry `%s` contains `..`; refused (it could write outside the root filesystem)",
				 path);
			return NULL;
		}
		if (l && !(l == 1 && p[0] == '.')) {
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, l);
			o += l;
		}
		p += l;
		while (*p == '/')
			p++;
	}
	out[o] = 0;
	return out;
}

static bool no_openat2(void)
{
	static int state = -1;
	if (state < 0) {
		const char *e = getenv("SP_IMAGE_NO_OPENAT2");
		state = e && *e == '1';
	}
	return state;
}

/* Opens dir (a cleaned relative path, "" = the root) beneath the root. */
static int open_beneath(img_unpack *u, const char *dir, int flags,
			const char *entry, sp_err **err)
{
	const char *p = *dir ? dir : ".";
	if (!no_openat2()) {
		struct open_how how = {
			.flags = (uint64_t)(flags | O_DIRECTORY | O_CLOEXEC),
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
				   RESOLVE_NO_XDEV,
		};
		int fd;
		do
			fd = (int)syscall(SYS_openat2, u->root, p, &how, sizeof(how));
		while (fd < 0 && errno == EAGAIN);
		if (fd >= 0)
			return fd;
		if (errno == EXDEV || errno == ELOOP)
			return sp_error(err, SP_ERR_DENIED,
					"archive entry `%s`: `%s` leads outside the root filesystem through a symlink; refused",
					entry, dir);
		if (errno != ENOSYS)
			return sp_error_sys(err, errno, "archive entry `%s`: open `%s`",
					    entry, dir);
	}
	/* Fallback: component by component, no symlink in between. */
	int fd = openat(u->root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return sp_error_sys(err, errno, "open the root filesystem");
	_cleanup_free_ char *copy = sp_xstrdup(dir);
	for (char *save = NULL, *c = strtok_r(copy, "/", &save); c;
	     c = strtok_r(NULL, "/", &save)) {
		int nfd = openat(fd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		if (nfd < 0) {
			struct stat st;
			bool link = fstatat(fd, c, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				    S_ISLNK(st.st_mode);
			close(fd);
			if (link)
				return sp_error(err, SP_ERR_DENIED,
						"archive entry `%s`: `%s` passes through a symlink, which is refused without openat2",
						entry, dir);
			return sp_error_sys(err, e, "archive entry `%s`: open `%s`",
					    entry, dir);
		}
		close(fd);
		fd = nfd;
	}
	if (!(flags & O_PATH)) {
		/* Reopen for reading (fsetxattr needs a real fd). */
		int rfd = openat(fd, ".", flags | O_DIRECTORY | O_CLOEXEC);
		int e = errno;
		close(fd);
		if (rfd < 0)
			return sp_error_sys(err, e, "archive entry `%s`: open `%s`",
					    entry, dir);
		fd = rfd;
	}
	return fd;
}

/* Opens the parent of path, creating missing directories (0755, root
 * owned) as tar writers may omit them. *base points into path. */
static int open_parent(img_unpack *u, char *path, const char **base,
		       sp_err **err)
{
	char *slash = strrchr(path, '/');
	if (!slash) {
		*base = path;
		return open_beneath(u, "", O_PATH, path, err);
	}
	*slash = 0;
	*base = slash + 1;
	_cleanup_err_ sp_err *e1 = NULL;
	int fd = open_beneath(u, path, O_PATH, path, &e1);
	if (fd >= 0 || !e1 || e1->sys_errno != ENOENT) {
		if (fd < 0)
			fd = sp_error(err, e1->code, "%s", e1->msg);
		*slash = '/';
		return fd;
	}
	/* Create each missing component, resolving from the root. */
	for (char *c = path;; c++) {
		if (*c != '/' && *c != 0)
			continue;
		char saved = *c;
		*c = 0;
		char *ls = strrchr(path, '/');
		const char *name = ls ? ls + 1 : path;
		if (ls)
			*ls = 0;
		int pfd = open_beneath(u, ls ? path : "", O_PATH, path, err);
		if (ls)
			*ls = '/';
		if (pfd < 0) {
			*c = saved;
			*slash = '/';
			return pfd;
		}
		if (mkdirat(pfd, name, 0755) < 0 && errno != EEXIST) {
			int e = errno;
			close(pfd);
			*c = saved;
			*slash = '/';
			return sp_error_sys(err, e, "create directory `%s`", path);
		}
		close(pfd);
		*c = saved;
		if (!saved)
			break;
	}
	fd = open_beneath(u, path, O_PATH, path, err);
	*slash = '/';
	return fd;
}

static int remove_tree(int pfd, const char *name, int depth, sp_err **err)
{
	struct stat st;
	if (depth > 512)
		return sp_error(err, SP_ERR_LIMIT, "directory tree too deep to remove");
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : sp_error_sys(err, errno, "stat `%s`", name);
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(pfd, name, 0) < 0 && errno != ENOENT)
			return sp_error_sys(err, errno, "remove `%s`", name);
		return 0;
	}
	int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sp_error_sys(err, errno, "open `%s`", name);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return sp_error_sys(err, errno, "open `%s`", name);
	}
	struct dirent *de;
	int r = 0;
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = remove_tree(dirfd(d), de->d_name, depth + 1, err);
	}
	closedir(d);
	if (r < 0)
		return r;
	if (unlinkat(pfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return sp_error_sys(err, errno, "remove directory `%s`", name);
	return 0;
}

int img_remove_at(int dirfd, const char *name, sp_err **err)
{
	return remove_tree(dirfd, name, 0, err);
}

static bool xattr_allowed(const char *name)
{
	/* Capabilities and user data only: trusted.overlay.* would steer
	 * overlayfs, security.* LSM labels are not the image's to set. */
	return !strncmp(name, "user.", 5) || !strcmp(name, "security.capability");
}

/* Owner, mode, xattrs and mtime, on an fd of the new object (not a
 * symlink). chown before chmod: chown clears setuid bits. */
static int apply_meta(img_unpack *u, int fd, const struct img_tar_entry *e,
		      const char *path, sp_err **err)
{
	/* New objects already belong to us: skip the no-op chown. */
	if (u->o.chown && (e->uid != geteuid() || e->gid != getegid()) &&
	    fchown(fd, (uid_t)e->uid, (gid_t)e->gid) < 0)
		return sp_error_sys(err, errno, "chown `%s`", path);
	if (fchmod(fd, e->mode) < 0)
		return sp_error_sys(err, errno, "chmod `%s`", path);
	for (size_t i = 0; i < e->nxattrs; i++) {
		if (!xattr_allowed(e->xattrs[i].name)) {
			sp_log_debug("image: skipping xattr %s on %s",
				     e->xattrs[i].name, path);
			continue;
		}
		if (fsetxattr(fd, e->xattrs[i].name, e->xattrs[i].value,
			      e->xattrs[i].len, 0) < 0 && errno != ENOTSUP)
			return sp_error_sys(err, errno, "set xattr %s on `%s`",
					    e->xattrs[i].name, path);
	}
	struct timespec ts[2] = {{e->mtime, 0}, {e->mtime, 0}};
	futimens(fd, ts);
	return 0;
}

static int account(img_unpack *u, uint64_t size, const char *path,
		   sp_err **err)
{
	u->entries++;
	u->bytes += ((size + 4095) & ~(uint64_t)4095) + 512;
	if (u->bytes > u->o.max_bytes)
		return sp_error(err, SP_ERR_LIMIT,
				"image rootfs exceeds its size limit of %llu bytes at `%s`; raise the pod's image size limit or use a smaller image",
				(unsigned long long)u->o.max_bytes, path);
	if (u->entries > u->o.max_entries)
		return sp_error(err, SP_ERR_LIMIT,
				"image rootfs exceeds its limit of %llu files at `%s`",
				(unsigned long long)u->o.max_entries, path);
	return 0;
}

typedef ssize_t (*data_fn)(void *ctx, void *buf, size_t n, sp_err **err);

/* Removes what is at parent/base unless it is a directory and keep_dir. */
static int clear_slot(int pfd, const char *base, bool keep_dir, bool *is_dir,
		      sp_err **err)
{
	struct stat st;
	*is_dir = false;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : sp_error_sys(err, errno, "stat `%s`", base);
	if (S_ISDIR(st.st_mode) && keep_dir) {
		*is_dir = true;
		return 0;
	}
	return remove_tree(pfd, base, 0, err);
}

static int whiteout(img_unpack *u, int pfd, const char *dir, const char *base,
		    const char *path, sp_err **err)
{
	if (!strcmp(base, ".wh..wh..opq")) {
		if (u->o.overlay_whiteouts) {
			_cleanup_close_ int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd < 0 || fsetxattr(dfd, OVL_OPAQUE, "y", 1, 0) < 0)
				return sp_error_sys(err, errno,
						    "mark `%s` opaque (overlayfs needs trusted.* xattrs on the cache)",
						    dir);
			return 0;
		}
		/* Remove what lower layers put in dir. */
		_cleanup_close_ int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return sp_error_sys(err, errno, "open `%s`", dir);
		DIR *d = fdopendir(sp_steal_fd(&dfd));
		if (!d)
			return sp_error_sys(err, errno, "open `%s`", dir);
		struct dirent *de;
		int r = 0;
		while (r == 0 && (errno = 0, de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			_cleanup_free_ char *child = *dir ? sp_xasprintf("%s/%s", dir, de->d_name)
							  : sp_xstrdup(de->d_name);
			if (!set_has(&u->made, child))
				r = remove_tree(dirfd(d), de->d_name, 0, err);
		}
		closedir(d);
		return r;
	}
	const char *name = base + 4;
	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return sp_error(err, SP_ERR_DENIED,
				"archive entry `%s`: bad whiteout name; refused", path);
	_cleanup_free_ char *target = *dir ? sp_xasprintf("%s/%s", dir, name)
					   : sp_xstrdup(name);
	if (set_has(&u->made, target))
		return 0;
	if (u->o.overlay_whiteouts) {
		bool is_dir;
		int r = clear_slot(pfd, name, false, &is_dir, err);
		if (r < 0)
			return r;
		if (mknodat(pfd, name, S_IFCHR | 0, makedev(0, 0)) < 0)
			return sp_error_sys(err, errno,
					    "create the overlay whiteout for `%s` (needs CAP_MKNOD)",
					    target);
		set_add(&u->made, target);
		return 0;
	}
	return remove_tree(pfd, name, 0, err);
}

static int apply_entry(img_unpack *u, const struct img_tar_entry *e,
		       data_fn data, void *ctx, sp_err **err)
{
	_cleanup_free_ char *path = img_clean_path(e->path, err);
	if (!path)
		return SP_ERR_DENIED;
	if (!*path) {
		/* "./": the root directory's own owner and mode. */
		if (e->type != '5')
			return sp_error(err, SP_ERR_DENIED,
					"archive entry `%s` would replace the root directory; refused",
					e->path);
		_cleanup_close_ int rfd = open_beneath(u, "", O_RDONLY, e->path, err);
		return rfd < 0 ? rfd : apply_meta(u, rfd, e, "/", err);
	}
	if (strlen(path) > IMG_MAX_PATH)
		return sp_error(err, SP_ERR_LIMIT, "archive entry name too long");
	int r = account(u, e->size, path, err);
	if (r < 0)
		return r;
	const char *base;
	_cleanup_free_ char *pcopy = sp_xstrdup(path);
	_cleanup_close_ int pfd = open_parent(u, pcopy, &base, err);
	if (pfd < 0)
		return pfd;
	char *ls = strrchr(pcopy, '/');
	const char *dir = ls ? pcopy : "";
	if (ls)
		*ls = 0; /* pcopy is now the parent's path */

	if (!strncmp(base, ".wh.", 4))
		return whiteout(u, pfd, dir, base, path, err);

	if (e->type == '1') {
		_cleanup_free_ char *t = img_clean_path(e->linkname, err);
		if (!t)
			return sp_error_wrap(err, "hard link `%s`", path);
		if (!strcmp(t, path))
			return 0; /* a link to itself: nothing to do */
	}
	bool is_dir;
	r = clear_slot(pfd, base, e->type == '5', &is_dir, err);
	if (r < 0)
		return r;
	set_add(&u->made, path);
	switch (e->type) {
	case '5': {
		if (!is_dir && mkdirat(pfd, base, 0700) < 0)
			return sp_error_sys(err, errno, "create directory `%s`", path);
		_cleanup_close_ int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY |
							     O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return sp_error_sys(err, errno, "open directory `%s`", path);
		return apply_meta(u, fd, e, path, err);
	}
	case '0': {
		_cleanup_close_ int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL |
							     O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return sp_error_sys(err, errno, "create `%s`", path);
		/* One buffer per unpacker (a thread-local one was never freed
		 * when the agent's worker threads ended). */
		if (!u->buf)
			u->buf = sp_xmalloc(UNPACK_BUF);
		uint8_t *buf = u->buf;
		for (;;) {
			ssize_t n = data(ctx, buf, UNPACK_BUF, err);
			if (n < 0)
				return (int)n;
			if (n == 0)
				break;
			if (sp_write_all(fd, buf, (size_t)n) < 0) {
				if (errno == ENOSPC)
					return sp_error(err, SP_ERR_LIMIT,
							"image rootfs: no space left writing `%s`; the guest's image filesystem is full",
							path);
				return sp_error_sys(err, errno, "write `%s`", path);
			}
		}
		return apply_meta(u, fd, e, path, err);
	}
	case '2':
		if (symlinkat(e->linkname, pfd, base) < 0)
			return sp_error_sys(err, errno, "create symlink `%s`", path);
		if (u->o.chown && fchownat(pfd, base, (uid_t)e->uid, (gid_t)e->gid,
					   AT_SYMLINK_NOFOLLOW) < 0)
			return sp_error_sys(err, errno, "chown `%s`", path);
		struct timespec ts[2] = {{e->mtime, 0}, {e->mtime, 0}};
		utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW);
		return 0;
	case '1': {
		_cleanup_free_ char *target = img_clean_path(e->linkname, err);
		if (!target)
			return sp_error_wrap(err, "hard link `%s`", path);
		if (!*target)
			return sp_error(err, SP_ERR_DENIED,
					"hard link `%s` points at the root; refused", path);
		const char *tbase;
		_cleanup_close_ int tfd = open_parent(u, target, &tbase, err);
		if (tfd < 0)
			return sp_error_wrap(err, "hard link `%s`", path);
		struct stat st;
		if (fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return sp_error_sys(err, errno,
					    "hard link `%s`: its target `%s` is not in the image",
					    path, e->linkname);
		if (S_ISDIR(st.st_mode))
			return sp_error(err, SP_ERR_DENIED,
					"hard link `%s` points at a directory; refused", path);
		if (linkat(tfd, tbase, pfd, base, 0) < 0)
			return sp_error_sys(err, errno, "hard link `%s`", path);
		return 0;
	}
	case '6': {
		if (mknodat(pfd, base, S_IFIFO | 0600, 0) < 0)
			return sp_error_sys(err, errno, "create fifo `%s`", path);
		if (u->o.chown && fchownat(pfd, base, (uid_t)e->uid, (gid_t)e->gid,
					   AT_SYMLINK_NOFOLLOW) < 0)
			return sp_error_sys(err, errno, "chown `%s`", path);
		if (fchmodat(pfd, base, e->mode, 0) < 0)
			return sp_error_sys(err, errno, "chmod `%s`", path);
		return 0;
	}
	case '3':
	case '4':
		/* Device nodes from an image would hand the container the
		 * guest's devices; the runtime creates the ones it needs. */
		sp_log_warn("image: not creating device node %s", path);
		return 0;
	}
	return sp_error(err, SP_ERR_UNSUPPORTED, "archive entry `%s`: unknown type", path);
}

static ssize_t tar_data(void *ctx, void *buf, size_t n, sp_err **err)
{
	return img_tar_read(ctx, buf, n, err);
}

int img_unpack_layer(img_unpack *u, img_tar *tar, sp_err **err)
{
	set_clear(&u->made);
	const struct img_tar_entry *e;
	int r;
	while ((r = img_tar_next(tar, &e, err)) > 0) {
		r = apply_entry(u, e, tar_data, tar, err);
		if (r < 0)
			return r;
	}
	return r;
}

/* ---- merging an unpacked layer tree (the fallback without overlay) ---- */

static ssize_t fd_data(void *ctx, void *buf, size_t n, sp_err **err)
{
	int fd = *(int *)ctx;
	ssize_t r;
	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return sp_error_sys(err, errno, "read the layer cache");
	return r;
}

static int merge_dir(img_unpack *u, int dfd, const char *rel, int depth,
		     sp_err **err)
{
	if (depth > 256)
		return sp_error(err, SP_ERR_LIMIT, "layer tree too deep at `%s`", rel);
	char v;
	if (fgetxattr(dfd, OVL_OPAQUE, &v, 1) == 1 && v == 'y') {
		struct img_tar_entry e = {0};
		e.path = *rel ? sp_xasprintf("%s/.wh..wh..opq", rel)
			      : sp_xstrdup(".wh..wh..opq");
		e.type = '0';
		int r = apply_entry(u, &e, NULL, NULL, err);
		free(e.path);
		if (r < 0)
			return r;
	}
	int cfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = cfd >= 0 ? fdopendir(cfd) : NULL;
	if (!d) {
		if (cfd >= 0)
			close(cfd);
		return sp_error_sys(err, errno, "read the layer cache at `%s`", rel);
	}
	struct dirent *de;
	int r = 0;
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = sp_error_sys(err, errno, "stat the layer cache");
			break;
		}
		struct img_tar_entry e = {0};
		e.path = *rel ? sp_xasprintf("%s/%s", rel, de->d_name)
			      : sp_xstrdup(de->d_name);
		e.mode = st.st_mode & 07777;
		e.uid = st.st_uid;
		e.gid = st.st_gid;
		e.mtime = st.st_mtim.tv_sec;
		_cleanup_close_ int fd = -1;
		if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
			free(e.path);
			e.path = *rel ? sp_xasprintf("%s/.wh.%s", rel, de->d_name)
				      : sp_xasprintf(".wh.%s", de->d_name);
			e.type = '0';
			r = apply_entry(u, &e, NULL, NULL, err);
		} else if (S_ISDIR(st.st_mode)) {
			e.type = '5';
			r = apply_entry(u, &e, NULL, NULL, err);
			fd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY |
							     O_NOFOLLOW | O_CLOEXEC);
			if (r == 0 && fd < 0)
				r = sp_error_sys(err, errno, "open the layer cache");
			if (r == 0)
				r = merge_dir(u, fd, e.path, depth + 1, err);
		} else if (S_ISREG(st.st_mode)) {
			e.type = '0';
			e.size = (uint64_t)st.st_size;
			fd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				r = sp_error_sys(err, errno, "open the layer cache");
			else
				r = apply_entry(u, &e, fd_data, &fd, err);
		} else if (S_ISLNK(st.st_mode)) {
			char target[IMG_MAX_PATH + 1];
			ssize_t n = readlinkat(dfd, de->d_name, target, IMG_MAX_PATH);
			if (n < 0) {
				r = sp_error_sys(err, errno, "read a symlink in the layer cache");
			} else {
				target[n] = 0;
				e.type = '2';
				e.linkname = target;
				r = apply_entry(u, &e, NULL, NULL, err);
			}
		} else if (S_ISFIFO(st.st_mode)) {
			e.type = '6';
			r = apply_entry(u, &e, NULL, NULL, err);
		}
		free(e.path);
	}
	closedir(d);
	return r;
}

int img_unpack_merge_tree(img_unpack *u, int layer_fd, sp_err **err)
{
	set_clear(&u->made);
	return merge_dir(u, layer_fd, "", 0, err);
}
