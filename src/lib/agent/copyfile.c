/* SPDX-License-Identifier: Apache-2.0 */
/* CopyFile: the host fills ConfigMap, Secret, projected and downwardAPI
 * volumes with files under /run/sealpod/sandbox/<kind>/<name>/... (kind
 * configmap, secret, projected, downwardapi). Every path component
 * is opened with O_NOFOLLOW below a directory fd, so no symlink or ".."
 * leads outside; a file appears (by rename) only when its last chunk
 * arrived. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "agent_internal.h"
#include "sealpod/file.h"

#define GUEST_SANDBOX "/run/sealpod/sandbox/"
#define COPY_MAX_FILE (16u << 20)
#define COPY_MAX_DEPTH 16

char *sandbox_dir(sp_agent *a)
{
	return sp_xasprintf("%s/sandbox", a->state_dir);
}

static bool bad_component(const char *c, size_t n)
{
	return n == 0 || n > 255 || (n == 1 && c[0] == '.') ||
	       (n == 2 && c[0] == '.' && c[1] == '.');
}

/* The volume kinds whose files CopyFile delivers (docs/policy.md). */
static const char *const COPY_KINDS[] = {"configmap/", "secret/", "projected/",
					 "downwardapi/"};

static bool copy_kind(const char *rel)
{
	for (size_t i = 0; i < SP_ARRAY_LEN(COPY_KINDS); i++)
		if (!strncmp(rel, COPY_KINDS[i], strlen(COPY_KINDS[i])))
			return true;
	return false;
}

/* A symlink target that stays inside the volume whatever links exist: relative,
 * and no component is "..". Kubelet's "..data/key" is fine ("..data" is a
 * name). "." and empty components are harmless. */
static bool safe_link_target(const char *t)
{
	if (!t[0] || t[0] == '/')
		return false;
	for (const char *s = t;;) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return false;
		if (!e)
			return true;
		s = e + 1;
	}
}

int h_copy_file(sp_agent *a, const ACopyFile *q, reply *r)
{
	const char *path = q->path ? q->path : "";
	if (strncmp(path, GUEST_SANDBOX, strlen(GUEST_SANDBOX)) != 0 ||
	    strlen(path) > 4096)
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CopyFile: path must be under " GUEST_SANDBOX
				 "{configmap,secret,projected,downwardapi}/");
	const char *rel = path + strlen(GUEST_SANDBOX);
	if (!copy_kind(rel))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CopyFile: `%.200s` is not in a configmap, secret, projected or downwardapi volume",
				 path);
	/* Split and check every component first. */
	const char *comp[COPY_MAX_DEPTH];
	size_t clen[COPY_MAX_DEPTH], n = 0;
	for (const char *s = rel; *s;) {
		const char *e = strchr(s, '/');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (n == COPY_MAX_DEPTH || bad_component(s, len))
			return reply_err(r, SP_RPC_INVALID_ARGUMENT,
					 "CopyFile: `%.200s` has an empty, \".\", \"..\" or over-long component, or is deeper than %d",
					 path, COPY_MAX_DEPTH);
		comp[n] = s;
		clen[n++] = len;
		s = e ? e + 1 : s + len;
	}
	if (n < 3)
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CopyFile: `%.200s` names no file inside a volume", path);
	mode_t fmt = (mode_t)q->file_mode & S_IFMT;
	if (fmt != 0 && fmt != S_IFREG && fmt != S_IFDIR && fmt != S_IFLNK)
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CopyFile: only regular files, directories and symlinks");
	if (q->file_size < 0 || q->file_size > COPY_MAX_FILE || q->offset < 0 ||
	    (uint64_t)q->offset + q->data.len > (uint64_t)q->file_size)
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CopyFile: offset %lld + %zu bytes does not fit the file size %lld (at most %u)",
				 (long long)q->offset, q->data.len,
				 (long long)q->file_size, COPY_MAX_FILE);

	_cleanup_free_ char *root = sandbox_dir(a);
	_cleanup_err_ sp_err *e = NULL;
	if (sp_mkdir_p(root, 0755, &e) < 0)
		return reply_sp_err(r, e, "CopyFile");
	int dfd = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dfd < 0)
		return reply_err(r, SP_RPC_INTERNAL, "CopyFile: open %s: %s", root,
				 strerror(errno));
	mode_t dmode = q->dir_mode ? (mode_t)q->dir_mode & 07777 : 0755;
	char name[256];
	for (size_t i = 0; i + 1 < n; i++) {
		memcpy(name, comp[i], clen[i]);
		name[clen[i]] = 0;
		if (mkdirat(dfd, name, dmode) < 0 && errno != EEXIST) {
			int er = errno;
			close(dfd);
			return reply_err(r, SP_RPC_INTERNAL, "CopyFile: mkdir %s: %s",
					 name, strerror(er));
		}
		int nfd = openat(dfd, name, O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC);
		close(dfd);
		if (nfd < 0)
			return reply_err(r, SP_RPC_INVALID_ARGUMENT,
					 "CopyFile: `%s` in `%.200s` is not a directory (symlinks are not followed)",
					 name, path);
		dfd = nfd;
	}
	memcpy(name, comp[n - 1], clen[n - 1]);
	name[clen[n - 1]] = 0;
	_cleanup_close_ int dir = dfd;
	bool root_user = geteuid() == 0;

	if (fmt == S_IFDIR) {
		if (mkdirat(dir, name, (mode_t)q->file_mode & 07777) < 0 && errno != EEXIST)
			return reply_err(r, SP_RPC_INTERNAL, "CopyFile: mkdir %s: %s",
					 name, strerror(errno));
		if (root_user)
			fchownat(dir, name, q->uid, q->gid, AT_SYMLINK_NOFOLLOW);
		return reply_empty(r);
	}
	char tmp[300];
	snprintf(tmp, sizeof(tmp), ".%s.sealpod-tmp", name);
	if (fmt == S_IFLNK) {
		/* protobuf-c leaves data NULL for an empty field. */
		_cleanup_free_ char *target =
			q->data.len ? sp_xstrndup((const char *)q->data.data, q->data.len)
				    : sp_xstrdup("");
		if (strlen(target) != q->data.len || !safe_link_target(target) ||
		    (int64_t)q->data.len != q->file_size)
			return reply_err(r, SP_RPC_INVALID_ARGUMENT,
					 "CopyFile: symlink `%s` must be relative, without a \"..\" component, sent in one piece",
					 name);
		unlinkat(dir, tmp, 0);
		if (symlinkat(target, dir, tmp) < 0 || renameat(dir, tmp, dir, name) < 0)
			return reply_err(r, SP_RPC_INTERNAL, "CopyFile: symlink %s: %s",
					 name, strerror(errno));
		if (root_user)
			fchownat(dir, name, q->uid, q->gid, AT_SYMLINK_NOFOLLOW);
		return reply_empty(r);
	}
	/* Regular file, in chunks: each chunk continues where the last ended. */
	int flags = O_WRONLY | O_NOFOLLOW | O_CLOEXEC;
	if (q->offset == 0)
		flags |= O_CREAT | O_TRUNC;
	_cleanup_close_ int fd = openat(dir, tmp, flags, 0600);
	if (fd < 0)
		return reply_err(r, q->offset ? SP_RPC_FAILED_PRECONDITION : SP_RPC_INTERNAL,
				 "CopyFile: %s: %s%s", name, strerror(errno),
				 q->offset ? " (send the chunk at offset 0 first)" : "");
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != q->offset)
		return reply_err(r, SP_RPC_FAILED_PRECONDITION,
				 "CopyFile: %s: chunk at offset %lld does not continue the %lld bytes received",
				 name, (long long)q->offset, (long long)st.st_size);
	if (q->data.len && pwrite(fd, q->data.data, q->data.len, q->offset) !=
				   (ssize_t)q->data.len)
		return reply_err(r, SP_RPC_INTERNAL, "CopyFile: write %s: %s", name,
				 strerror(errno));
	if ((uint64_t)q->offset + q->data.len == (uint64_t)q->file_size) {
		if (fchmod(fd, (mode_t)q->file_mode & 07777) < 0 ||
		    (root_user && fchown(fd, q->uid, q->gid) < 0) ||
		    renameat(dir, tmp, dir, name) < 0)
			return reply_err(r, SP_RPC_INTERNAL, "CopyFile: finish %s: %s",
					 name, strerror(errno));
	}
	return reply_empty(r);
}
