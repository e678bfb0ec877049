/* SPDX-License-Identifier: Apache-2.0 */
/* Pod volumes whose files live on the host: kubelet writes ConfigMap,
 * Secret, projected and downwardAPI volumes under its pods directory and
 * containerd's config.json bind-mounts them. A UVM cannot see host
 * directories, so the sandbox copies them into the guest with CopyFile, to
 * the directory the policy-built spec mounts (docs/shim.md). The guest
 * treats every byte as hostile (the policy decides each path, the agent
 * writes below a directory fd); here the care is for the host: nothing in
 * the volume directory is followed. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.pb-c.h"
#include "sealpod/log.h"
#include "sandbox-internal.h"

#define SEC 1000000000ull
#define COPY_TIMEOUT (60 * SEC)
#define COPY_CHUNK (1u << 20)      /* well below ttRPC's 4 MiB frames */
#define COPY_MAX_FILE (16u << 20)  /* the agent's limit per file */
#define COPY_MAX_ENTRIES 4096
/* The agent takes 16 components below /run/sealpod/sandbox: <kind>/<name>
 * and 14 more. */
#define COPY_MAX_DEPTH 13

/* Kubelet's plugin directory names and the agent's kind directories. An
 * emptyDir has no files to copy: the agent makes it on demand. */
static const struct {
	const char *host;
	const char *guest;
} KINDS[] = {
	{"kubernetes.io~configmap", "configmap"},
	{"kubernetes.io~secret", "secret"},
	{"kubernetes.io~projected", "projected"},
	{"kubernetes.io~downward-api", "downwardapi"},
};

static bool volume_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 128 || (n == 1 && s[0] == '.') ||
	    (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", s[i]))
			return false;
	return true;
}

/* The last component of p[0..*n) (trailing slashes already gone); *n
 * becomes the length of what precedes it, without the slash. */
static const char *last_component(const char *p, size_t *n, size_t *len)
{
	size_t end = *n, start = end;
	while (start > 0 && p[start - 1] != '/')
		start--;
	*len = end - start;
	*n = start ? start - 1 : 0;
	return p + start;
}

char *sp_sandbox_volume_guest_dir(const char *host_path)
{
	if (!host_path || host_path[0] != '/')
		return NULL;
	size_t n = strlen(host_path);
	while (n > 1 && host_path[n - 1] == '/')
		n--;
	size_t name_len, kind_len, vols_len, uid_len, pods_len;
	const char *name = last_component(host_path, &n, &name_len);
	const char *kind = last_component(host_path, &n, &kind_len);
	const char *vols = last_component(host_path, &n, &vols_len);
	const char *uid = last_component(host_path, &n, &uid_len);
	const char *pods = last_component(host_path, &n, &pods_len);
	/* <kubelet root>/pods/<pod uid>/volumes/<plugin>/<volume name> */
	if (pods_len != 4 || memcmp(pods, "pods", 4) || !volume_name_ok(uid, uid_len) ||
	    vols_len != 7 || memcmp(vols, "volumes", 7) || !volume_name_ok(name, name_len))
		return NULL;
	for (size_t i = 0; i < SP_ARRAY_LEN(KINDS); i++)
		if (strlen(KINDS[i].host) == kind_len && !memcmp(kind, KINDS[i].host, kind_len))
			return sp_xasprintf("%s/%s/%.*s", SP_SANDBOX_GUEST_VOLUMES, KINDS[i].guest,
					    (int)name_len, name);
	return NULL;
}

typedef struct copy_ctx {
	sp_sandbox *sb;
	const char *host_root;
	size_t entries;
} copy_ctx;

static int send_entry(copy_ctx *c, const char *gpath, const struct stat *st,
		      uint32_t fmt, const uint8_t *data, size_t len, int64_t size,
		      int64_t offset, sp_err **err)
{
	Sealpod__Agent__V1__CopyFileRequest req = SEALPOD__AGENT__V1__COPY_FILE_REQUEST__INIT;
	req.path = (char *)gpath;
	/* Permission bits only: the policy refuses setuid, setgid and sticky. */
	req.file_mode = fmt | (st->st_mode & 0777);
	req.dir_mode = 0755;
	req.uid = st->st_uid;
	req.gid = st->st_gid;
	req.file_size = size;
	req.offset = offset;
	req.data.data = (uint8_t *)data;
	req.data.len = len;
	if (sp_sandbox_agent_call(c->sb, "CopyFile", &req.base, NULL, NULL, COPY_TIMEOUT,
				  err) < 0)
		return sp_error_wrap(err, "copying %s", gpath);
	return 0;
}

static int copy_regular(copy_ctx *c, int dfd, const char *name, const char *hpath,
			const char *gpath, sp_err **err)
{
	/* O_NONBLOCK: a fifo swapped in after the stat must not hang us. */
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return sp_error_sys(err, errno, "volume file %s", hpath);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return sp_error_sys(err, errno, "volume file %s", hpath);
	if (!S_ISREG(st.st_mode))
		return sp_error(err, SP_ERR_INVALID, "volume file %s changed type while copying", hpath);
	if (st.st_size > COPY_MAX_FILE)
		return sp_error(err, SP_ERR_INVALID,
				"volume file %s: %lld bytes, more than the guest takes per file (%u)",
				hpath, (long long)st.st_size, COPY_MAX_FILE);
	int64_t size = st.st_size;
	if (size == 0)
		return send_entry(c, gpath, &st, S_IFREG, NULL, 0, 0, 0, err);
	_cleanup_free_ uint8_t *buf = sp_xmalloc(size < COPY_CHUNK ? (size_t)size : COPY_CHUNK);
	for (int64_t off = 0; off < size;) {
		size_t want = size - off < COPY_CHUNK ? (size_t)(size - off) : COPY_CHUNK;
		ssize_t got = pread(fd, buf, want, off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return sp_error_sys(err, errno, "reading volume file %s", hpath);
		if (got == 0)
			return sp_error(err, SP_ERR_INVALID,
					"volume file %s shrank while copying (kubelet rewrote it?); retry",
					hpath);
		if (send_entry(c, gpath, &st, S_IFREG, buf, (size_t)got, size, off, err) < 0)
			return SP_ERR_PROTOCOL;
		off += got;
	}
	return 0;
}

static int copy_tree(copy_ctx *c, int dfd, const char *hdir, const char *gdir,
		     unsigned depth, sp_err **err)
{
	int dup_fd = dup(dfd);
	if (dup_fd < 0)
		return sp_error_sys(err, errno, "volume directory %s", hdir);
	DIR *d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return sp_error_sys(err, errno, "volume directory %s", hdir);
	}
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (errno = 0, de = readdir(d))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		_cleanup_free_ char *hpath = sp_xasprintf("%s/%s", hdir, name);
		_cleanup_free_ char *gpath = sp_xasprintf("%s/%s", gdir, name);
		if (++c->entries > COPY_MAX_ENTRIES) {
			rc = sp_error(err, SP_ERR_INVALID,
				      "volume %s has more than %d entries; that is not a ConfigMap or Secret",
				      c->host_root, COPY_MAX_ENTRIES);
			break;
		}
		struct stat st;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = sp_error_sys(err, errno, "volume entry %s", hpath);
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			/* Kept as a link: kubelet's key -> ..data/key ->
			 * ..<timestamp>/key layout. The guest checks the target. */
			char target[PATH_MAX];
			ssize_t tl = readlinkat(dfd, name, target, sizeof(target) - 1);
			if (tl < 0)
				rc = sp_error_sys(err, errno, "volume link %s", hpath);
			else
				rc = send_entry(c, gpath, &st, S_IFLNK, (uint8_t *)target,
						(size_t)tl, tl, 0, err);
		} else if (S_ISREG(st.st_mode)) {
			rc = copy_regular(c, dfd, name, hpath, gpath, err);
		} else if (S_ISDIR(st.st_mode)) {
			if (depth + 1 > COPY_MAX_DEPTH) {
				rc = sp_error(err, SP_ERR_INVALID,
					      "volume directory %s is nested deeper than %d",
					      hpath, COPY_MAX_DEPTH);
				break;
			}
			rc = send_entry(c, gpath, &st, S_IFDIR, NULL, 0, 0, 0, err);
			if (rc < 0)
				break;
			_cleanup_close_ int sub = openat(dfd, name, O_DIRECTORY | O_NOFOLLOW |
							 O_RDONLY | O_CLOEXEC);
			if (sub < 0)
				rc = sp_error_sys(err, errno, "volume directory %s", hpath);
			else
				rc = copy_tree(c, sub, hpath, gpath, depth + 1, err);
		} else {
			rc = sp_error(err, SP_ERR_INVALID,
				      "volume entry %s is neither a file, a directory nor a symlink",
				      hpath);
		}
	}
	if (rc == 0 && errno != 0)
		rc = sp_error_sys(err, errno, "reading volume directory %s", hdir);
	closedir(d);
	return rc;
}

int sp_sandbox_copy_dir(sp_sandbox *sb, const char *host_dir, const char *guest_dir,
			sp_err **err)
{
	_cleanup_close_ int fd = open(host_dir, O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sp_error_sys(err, errno,
				    "volume directory %s (it must be a directory, not a symlink)",
				    host_dir);
	copy_ctx c = {.sb = sb, .host_root = host_dir};
	if (copy_tree(&c, fd, host_dir, guest_dir, 0, err) < 0)
		return (*err)->code;
	sp_log_debug("sandbox %s: copied %zu entries of %s to %s", sb->id, c.entries,
		     host_dir, guest_dir);
	return 0;
}
