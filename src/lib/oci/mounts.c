/* SPDX-License-Identifier: Apache-2.0 */
/* The root filesystem: mounts, /dev, pivot_root, masked and read-only
 * paths. Runs in the container's init, inside its new mount namespace.
 *
 * Mount destinations are resolved with openat2(RESOLVE_IN_ROOT), so a
 * symlink in the image can't point a mount outside the rootfs, and every
 * mount targets /proc/self/fd/N of the resolved fd (re-opened after each
 * mount, since the old fd still names the covered directory). */
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "oci-internal.h"
#include "sealpod/bytes.h"

static const struct {
	const char *name;
	bool clear;
	unsigned long flag;
} mount_flags[] = {
	{"defaults", false, 0},
	{"ro", false, MS_RDONLY},
	{"rw", true, MS_RDONLY},
	{"suid", true, MS_NOSUID},
	{"nosuid", false, MS_NOSUID},
	{"dev", true, MS_NODEV},
	{"nodev", false, MS_NODEV},
	{"exec", true, MS_NOEXEC},
	{"noexec", false, MS_NOEXEC},
	{"sync", false, MS_SYNCHRONOUS},
	{"async", true, MS_SYNCHRONOUS},
	{"dirsync", false, MS_DIRSYNC},
	{"remount", false, MS_REMOUNT},
	{"mand", false, MS_MANDLOCK},
	{"nomand", true, MS_MANDLOCK},
	{"atime", true, MS_NOATIME},
	{"noatime", false, MS_NOATIME},
	{"diratime", true, MS_NODIRATIME},
	{"nodiratime", false, MS_NODIRATIME},
	{"relatime", false, MS_RELATIME},
	{"norelatime", true, MS_RELATIME},
	{"strictatime", false, MS_STRICTATIME},
	{"nostrictatime", true, MS_STRICTATIME},
	{"lazytime", false, MS_LAZYTIME},
	{"nolazytime", true, MS_LAZYTIME},
	{"iversion", false, MS_I_VERSION},
	{"noiversion", true, MS_I_VERSION},
	{"silent", false, MS_SILENT},
	{"loud", true, MS_SILENT},
	{"nosymfollow", false, 256 /* MS_NOSYMFOLLOW */},
	{"symfollow", true, 256},
};

static const struct {
	const char *name;
	unsigned long flag;
} propagations[] = {
	{"private", MS_PRIVATE},	 {"rprivate", MS_PRIVATE | MS_REC},
	{"shared", MS_SHARED},		 {"rshared", MS_SHARED | MS_REC},
	{"slave", MS_SLAVE},		 {"rslave", MS_SLAVE | MS_REC},
	{"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

int oci_mount_options_parse(struct oci_mount *m, const json_t *opts,
			    const char *path, sp_err **err)
{
	size_t i;
	json_t *e;
	sp_buf data = SP_BUF_INIT;
	if (json_array_size(opts) > 256)
		return sp_error(err, SP_ERR_LIMIT, "%s.options: too many", path);
	json_array_foreach(opts, i, e) {
		const char *o = json_string_value(e);
		bool known = false;
		if (!o || !*o) {
			sp_buf_free(&data);
			return sp_error(err, SP_ERR_PARSE, "%s.options[%zu]: expected a non-empty string",
					path, i);
		}
		if (!strcmp(o, "bind") || !strcmp(o, "rbind")) {
			m->bind = true;
			m->rec |= o[0] == 'r';
			continue;
		}
		if (!strcmp(o, "idmap") || !strcmp(o, "ridmap") || !strcmp(o, "rro") ||
		    !strcmp(o, "rrw") || !strncmp(o, "rnosuid", 7) || !strcmp(o, "rnodev") ||
		    !strcmp(o, "rnoexec")) {
			sp_buf_free(&data);
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"%s.options[%zu]: `%s` is not supported", path, i, o);
		}
		if (!strcmp(o, "tmpcopyup"))
			continue; /* crun extension: accepted, no copy-up done */
		for (size_t k = 0; k < SP_ARRAY_LEN(mount_flags); k++)
			if (!strcmp(o, mount_flags[k].name)) {
				known = true;
				if (mount_flags[k].clear) {
					m->flags &= ~mount_flags[k].flag;
					m->clear |= mount_flags[k].flag;
				} else {
					m->flags |= mount_flags[k].flag;
					m->clear &= ~mount_flags[k].flag;
				}
			}
		for (size_t k = 0; !known && k < SP_ARRAY_LEN(propagations); k++)
			if (!strcmp(o, propagations[k].name)) {
				known = true;
				if (m->n_propagation < SP_ARRAY_LEN(m->propagation))
					m->propagation[m->n_propagation++] = propagations[k].flag;
			}
		if (known)
			continue;
		if (strchr(o, ',')) {
			sp_buf_free(&data);
			return sp_error(err, SP_ERR_PARSE,
					"%s.options[%zu]: `%s` contains a comma; give one option per entry",
					path, i, o);
		}
		if (data.len)
			sp_buf_put(&data, ",", 1);
		sp_buf_put(&data, o, strlen(o));
	}
	if (data.len > 4000) {
		sp_buf_free(&data);
		return sp_error(err, SP_ERR_LIMIT, "%s.options: data longer than a page", path);
	}
	if (data.len) {
		sp_buf_terminate(&data);
		m->data = (char *)sp_buf_steal(&data, NULL);
	}
	sp_buf_free(&data);
	return 0;
}

json_t *oci_mount_options_all(void)
{
	json_t *a = json_array();
	for (size_t k = 0; k < SP_ARRAY_LEN(mount_flags); k++)
		json_array_append_new(a, json_string(mount_flags[k].name));
	for (size_t k = 0; k < SP_ARRAY_LEN(propagations); k++)
		json_array_append_new(a, json_string(propagations[k].name));
	json_array_append_new(a, json_string("bind"));
	json_array_append_new(a, json_string("rbind"));
	json_array_append_new(a, json_string("tmpcopyup"));
	return a;
}

static int open_in_root(int rootfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	while (*path == '/')
		path++;
	if (!*path)
		path = ".";
	return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

/* Opens (O_PATH) path under rootfd, creating it and its parents: as a
 * directory, or as an empty file when is_file. */
static int create_in_root(int rootfd, const char *path, bool is_file)
{
	int fd = open_in_root(rootfd, path, O_PATH);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	_cleanup_free_ char *dup = sp_xstrdup(path);
	char *slash = strrchr(dup, '/');
	const char *base = dup;
	_cleanup_close_ int pfd = -1;
	if (slash) {
		*slash = 0;
		base = slash + 1;
		pfd = create_in_root(rootfd, dup[0] ? dup : "/", false);
	} else {
		pfd = open_in_root(rootfd, "/", O_PATH);
	}
	if (pfd < 0)
		return -1;
	if (!*base)
		return open_in_root(rootfd, path, O_PATH);
	if (is_file) {
		int f = openat(pfd, base, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (f < 0 && errno != EEXIST && errno != EISDIR)
			return -1;
		if (f >= 0)
			close(f);
	} else if (mkdirat(pfd, base, 0755) < 0 && errno != EEXIST) {
		return -1;
	}
	return open_in_root(rootfd, path, O_PATH);
}

static char *fdpath(int fd)
{
	return sp_xasprintf("/proc/self/fd/%d", fd);
}

/* A bind remount with flags; where the kernel keeps flags locked (in a
 * user namespace), retries with the mount's current locked flags. */
static int remount(const char *target, unsigned long flags)
{
	if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | flags, NULL) == 0)
		return 0;
	if (errno != EPERM)
		return -1;
	struct statvfs sv;
	if (statvfs(target, &sv) < 0)
		return -1;
	static const struct {
		unsigned long st, ms;
	} locked[] = {{ST_NOSUID, MS_NOSUID}, {ST_NODEV, MS_NODEV},
		      {ST_NOEXEC, MS_NOEXEC}, {ST_NOATIME, MS_NOATIME},
		      {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME}};
	for (size_t i = 0; i < SP_ARRAY_LEN(locked); i++)
		if (sv.f_flag & locked[i].st)
			flags |= locked[i].ms;
	return mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | flags, NULL);
}

/* type "cgroup": cgroup2 where the host is unified; on v1/hybrid hosts,
 * a tmpfs with the container's own directory of each hierarchy bound in
 * (as runc does without a cgroup namespace). */
static int mount_cgroup(int rootfd, const struct oci_mount *m, const char *target,
			const struct oci_cgroup *cg, char *msg, size_t n, const char *what)
{
	unsigned long fl = m->flags & ~(MS_REMOUNT);
	if (oci_cgroup_is_v2()) {
		if (mount("cgroup2", target, "cgroup2", fl, NULL) == 0)
			return 0;
		if (errno != EPERM && errno != EBUSY)
			return oci_msg(msg, n, errno, "%s: mounting cgroup2 on %s", what, m->dest);
		/* Not allowed here (user namespace without cgroupns): bind the
		 * container's own cgroup directory instead. */
		if (!cg || !cg->n || mount(cg->dirs[0], target, NULL, MS_BIND | MS_REC, NULL) < 0)
			return oci_msg(msg, n, errno, "%s: binding the cgroup on %s", what, m->dest);
		return (fl & MS_RDONLY) && remount(target, fl) < 0
			       ? oci_msg(msg, n, errno, "%s: remounting %s", what, m->dest)
			       : 0;
	}
	if (mount("tmpfs", target, "tmpfs", (fl & ~MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "mode=755") < 0)
		return oci_msg(msg, n, errno, "%s: mounting the cgroup tmpfs on %s", what, m->dest);
	for (size_t i = 0; cg && i < cg->n; i++) {
		const char *d = cg->dirs[i];
		const char *rest = d + strlen("/sys/fs/cgroup/");
		char name[64];
		size_t l = strcspn(rest, "/");
		if (l >= sizeof(name))
			continue;
		memcpy(name, rest, l);
		name[l] = 0;
		_cleanup_free_ char *sub = sp_xasprintf("%s/%s", m->dest, name);
		_cleanup_close_ int fd = create_in_root(rootfd, sub, false);
		if (fd < 0)
			return oci_msg(msg, n, errno, "%s: creating %s", what, sub);
		_cleanup_free_ char *t = fdpath(fd);
		if (mount(d, t, NULL, MS_BIND | MS_REC, NULL) < 0)
			return oci_msg(msg, n, errno, "%s: binding %s on %s", what, d, sub);
		_cleanup_close_ int fd2 = open_in_root(rootfd, sub, O_PATH);
		_cleanup_free_ char *t2 = fdpath(fd2);
		if (fd2 < 0 || remount(t2, fl | MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
			return oci_msg(msg, n, errno, "%s: remounting %s", what, sub);
	}
	if (fl & MS_RDONLY) {
		_cleanup_close_ int fd = open_in_root(rootfd, m->dest, O_PATH);
		_cleanup_free_ char *t = fdpath(fd);
		if (fd < 0 || mount(NULL, t, NULL, MS_REMOUNT | fl | MS_NOSUID | MS_NODEV | MS_NOEXEC,
				    "mode=755") < 0)
			return oci_msg(msg, n, errno, "%s: making %s read-only", what, m->dest);
	}
	return 0;
}

static int do_mount(int rootfd, const struct oci_mount *m, size_t idx,
		    const struct oci_child_ctx *cx, char *msg, size_t n)
{
	char what[48];
	snprintf(what, sizeof(what), "mounts[%zu]", idx);
	bool is_file = false;
	if (m->bind) {
		struct stat st;
		if (stat(m->source, &st) < 0)
			return oci_msg(msg, n, errno, "%s.source: %s", what, m->source);
		is_file = !S_ISDIR(st.st_mode);
	}
	_cleanup_close_ int fd = create_in_root(rootfd, m->dest, is_file);
	if (fd < 0)
		return oci_msg(msg, n, errno, "%s.destination: creating %s in the rootfs", what,
			       m->dest);
	_cleanup_free_ char *target = fdpath(fd);
	const char *type = m->type ? m->type : "none";
	if (!m->bind && !strcmp(type, "cgroup")) {
		if (mount_cgroup(rootfd, m, target, cx->cg, msg, n, what) < 0)
			return -1;
	} else if (m->bind) {
		if (mount(m->source, target, NULL, MS_BIND | (m->rec ? MS_REC : 0), NULL) < 0)
			return oci_msg(msg, n, errno, "%s: binding %s on %s", what, m->source,
				       m->dest);
		unsigned long fl = m->flags & ~MS_REMOUNT;
		if (fl || m->clear) {
			_cleanup_close_ int fd2 = open_in_root(rootfd, m->dest, O_PATH);
			_cleanup_free_ char *t2 = fdpath(fd2);
			if (fd2 < 0 || remount(t2, fl) < 0)
				return oci_msg(msg, n, errno, "%s: applying options to %s", what,
					       m->dest);
		}
	} else {
		const char *src = m->source ? m->source : type;
		unsigned long fl = m->flags;
		if (mount(src, target, type, fl, m->data) < 0) {
			int e = errno;
			/* sysfs needs a network namespace owned by our user
			 * namespace; without one, bind the host's (as runc). */
			if (!strcmp(type, "sysfs") && (e == EPERM || e == EBUSY) &&
			    mount("/sys", target, NULL, MS_BIND | MS_REC, NULL) == 0) {
				_cleanup_close_ int fd2 = open_in_root(rootfd, m->dest, O_PATH);
				_cleanup_free_ char *t2 = fdpath(fd2);
				if (fd2 >= 0 && remount(t2, fl | MS_NOSUID | MS_NODEV | MS_NOEXEC) == 0)
					goto propagate;
			}
			return oci_msg(msg, n, e, "%s: mounting %s (%s) on %s", what, src, type,
				       m->dest);
		}
	}
propagate:
	if (m->n_propagation) {
		_cleanup_close_ int fd3 = open_in_root(rootfd, m->dest, O_PATH);
		_cleanup_free_ char *t3 = fdpath(fd3);
		for (size_t i = 0; i < m->n_propagation; i++)
			if (fd3 < 0 || mount(NULL, t3, NULL, m->propagation[i], NULL) < 0)
				return oci_msg(msg, n, errno, "%s: setting propagation on %s", what,
					       m->dest);
	}
	return 0;
}

static const struct {
	const char *path;
	int major, minor;
} default_devices[] = {
	{"/dev/null", 1, 3},   {"/dev/zero", 1, 5},	{"/dev/full", 1, 7},
	{"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};

static int make_device(int rootfd, const struct oci_device *d, bool userns,
		       const char *what, char *msg, size_t n)
{
	_cleanup_free_ char *dup = sp_xstrdup(d->path);
	char *slash = strrchr(dup, '/');
	*slash = 0;
	_cleanup_close_ int pfd = create_in_root(rootfd, dup[0] ? dup : "/", false);
	if (pfd < 0)
		return oci_msg(msg, n, errno, "%s: creating the directory of %s", what, d->path);
	const char *base = slash + 1;
	if (userns) {
		/* mknod is not allowed in a user namespace: bind the host's. */
		_cleanup_close_ int fd = create_in_root(rootfd, d->path, true);
		_cleanup_free_ char *t = fdpath(fd);
		if (fd < 0 || mount(d->path, t, NULL, MS_BIND, NULL) < 0)
			return oci_msg(msg, n, errno, "%s: binding host %s", what, d->path);
		return 0;
	}
	mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
	mode_t mode = d->mode != OCI_UNSET ? (mode_t)d->mode : 0666;
	dev_t dev = d->type == 'p' ? 0 : makedev((unsigned)d->major, (unsigned)d->minor);
	unlinkat(pfd, base, 0);
	if (mknodat(pfd, base, type | (mode & 07777), dev) < 0)
		return oci_msg(msg, n, errno, "%s: mknod %s", what, d->path);
	if ((d->uid != OCI_UNSET || d->gid != OCI_UNSET) &&
	    fchownat(pfd, base, d->uid != OCI_UNSET ? (uid_t)d->uid : (uid_t)-1,
		     d->gid != OCI_UNSET ? (gid_t)d->gid : (gid_t)-1, AT_SYMLINK_NOFOLLOW) < 0)
		return oci_msg(msg, n, errno, "%s: chown %s", what, d->path);
	/* mknod honours the umask; fileMode must hold exactly. */
	if (fchmodat(pfd, base, mode & 07777, 0) < 0)
		return oci_msg(msg, n, errno, "%s: chmod %s", what, d->path);
	return 0;
}

static int setup_dev(int rootfd, const struct oci_spec *s, const struct oci_child_ctx *cx,
		     char *msg, size_t n)
{
	for (size_t i = 0; i < s->n_devices; i++) {
		char what[48];
		snprintf(what, sizeof(what), "linux.devices[%zu]", i);
		if (make_device(rootfd, &s->devices[i], cx->in_userns, what, msg, n) < 0)
			return -1;
	}
	for (size_t i = 0; i < SP_ARRAY_LEN(default_devices); i++) {
		bool listed = false;
		for (size_t k = 0; k < s->n_devices; k++)
			if (!strcmp(s->devices[k].path, default_devices[i].path))
				listed = true;
		if (listed)
			continue;
		struct oci_device d = {(char *)default_devices[i].path, 'c', default_devices[i].major,
				       default_devices[i].minor, 0666, OCI_UNSET, OCI_UNSET};
		if (make_device(rootfd, &d, cx->in_userns, "default device", msg, n) < 0)
			return -1;
	}
	_cleanup_close_ int dev = create_in_root(rootfd, "/dev", false);
	_cleanup_close_ int devdir = dev < 0 ? -1 : openat(dev, ".", O_DIRECTORY | O_CLOEXEC);
	if (devdir < 0)
		return oci_msg(msg, n, errno, "rootfs: opening /dev");
	static const char *links[][2] = {{"/proc/self/fd", "fd"},      {"/proc/self/fd/0", "stdin"},
					 {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
					 {"pts/ptmx", "ptmx"}};
	for (size_t i = 0; i < SP_ARRAY_LEN(links); i++) {
		if (!strcmp(links[i][1], "ptmx"))
			unlinkat(devdir, "ptmx", 0);
		if (symlinkat(links[i][0], devdir, links[i][1]) < 0 && errno != EEXIST)
			return oci_msg(msg, n, errno, "rootfs: symlink /dev/%s", links[i][1]);
	}
	return 0;
}

static bool needs_dev_setup(const struct oci_spec *s)
{
	for (size_t i = 0; i < s->n_mounts; i++)
		if (!strcmp(s->mounts[i].dest, "/dev") && s->mounts[i].bind)
			return false;
	return true;
}

int oci_rootfs_prepare(const struct oci_spec *s, const char *rootfs,
		       struct oci_child_ctx *cx, char *msg, size_t n)
{
	if (mount(NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		return oci_msg(msg, n, errno, "rootfs: making / a slave mount");
	if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		return oci_msg(msg, n, errno, "root.path: binding %s onto itself", rootfs);
	_cleanup_close_ int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return oci_msg(msg, n, errno, "root.path: opening %s", rootfs);
	for (size_t i = 0; i < s->n_mounts; i++)
		if (do_mount(rootfd, &s->mounts[i], i, cx, msg, n) < 0)
			return -1;
	if (needs_dev_setup(s) && setup_dev(rootfd, s, cx, msg, n) < 0)
		return -1;
	if (cx->proc->terminal) {
		_cleanup_close_ int ptmx = open_in_root(rootfd, "/dev/pts/ptmx", O_PATH);
		_cleanup_free_ char *p = ptmx >= 0 ? fdpath(ptmx) : sp_xstrdup("/dev/ptmx");
		if (oci_child_open_terminal(cx, p, msg, n) < 0)
			return -1;
		_cleanup_close_ int con = create_in_root(rootfd, "/dev/console", true);
		_cleanup_free_ char *t = fdpath(con);
		_cleanup_free_ char *src = fdpath(cx->pty_slave);
		if (con < 0 || mount(src, t, NULL, MS_BIND, NULL) < 0)
			return oci_msg(msg, n, errno, "process.terminal: binding the pty on /dev/console");
	}
	return 0;
}

/* "/" is the kernel's initramfs (ramfs or tmpfs named "rootfs"). */
static bool root_is_initramfs(void)
{
	struct statfs sf;
	if (statfs("/", &sf) < 0)
		return false;
	return sf.f_type == RAMFS_MAGIC || sf.f_type == TMPFS_MAGIC;
}

int oci_rootfs_pivot(const struct oci_spec *s, const char *rootfs, char *msg, size_t n)
{
	if (chdir(rootfs) < 0)
		return oci_msg(msg, n, errno, "root.path: chdir %s", rootfs);
	if (syscall(SYS_pivot_root, ".", ".") < 0) {
		/* The kernel refuses pivot_root while "/" is the initramfs
		 * (the guest agent as PID 1 of an initrd-only UVM). Then, as
		 * runc --no-pivot: move the rootfs over "/" and chroot. The
		 * old tree stays below, covered, in this mount namespace only.
		 * TODO: PID 1 switching to a tmpfs root would allow pivot_root. */
		if (errno != EINVAL || !root_is_initramfs())
			return oci_msg(msg, n, errno, "root.path: pivot_root into %s", rootfs);
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0)
			return oci_msg(msg, n, errno, "root.path: moving %s over the initramfs root",
				       rootfs);
		if (chdir("/") < 0)
			return oci_msg(msg, n, errno, "root.path: chdir /");
		return 0;
	}
	/* The old root is stacked under the new one: detach it without
	 * propagating the unmount to the host. */
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0 || umount2(".", MNT_DETACH) < 0)
		return oci_msg(msg, n, errno, "root.path: detaching the old root");
	if (chdir("/") < 0)
		return oci_msg(msg, n, errno, "root.path: chdir /");
	(void)s;
	return 0;
}

static int write_sysctls(const struct oci_spec *s, char *msg, size_t n)
{
	for (size_t i = 0; i < s->n_sysctls; i++) {
		_cleanup_free_ char *p = sp_xasprintf("/proc/sys/%s", s->sysctls[i].key);
		for (char *q = p + 10; *q; q++)
			if (*q == '.')
				*q = '/';
		_cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || write(fd, s->sysctls[i].value, strlen(s->sysctls[i].value)) < 0)
			return oci_msg(msg, n, errno, "linux.sysctl.%s", s->sysctls[i].key);
	}
	return 0;
}

int oci_rootfs_finish(const struct oci_spec *s, char *msg, size_t n)
{
	/* sysctls first: readonlyPaths usually holds /proc/sys. */
	if (write_sysctls(s, msg, n) < 0)
		return -1;
	for (char **p = s->masked; p && *p; p++) {
		struct stat st;
		if (lstat(*p, &st) < 0) {
			if (errno == ENOENT)
				continue;
			return oci_msg(msg, n, errno, "linux.maskedPaths: %s", *p);
		}
		int r = S_ISDIR(st.st_mode) ? mount("tmpfs", *p, "tmpfs", MS_RDONLY, "size=0")
					    : mount("/dev/null", *p, NULL, MS_BIND, NULL);
		if (r < 0)
			return oci_msg(msg, n, errno, "linux.maskedPaths: masking %s", *p);
	}
	for (char **p = s->readonly; p && *p; p++) {
		if (mount(*p, *p, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			return oci_msg(msg, n, errno, "linux.readonlyPaths: binding %s", *p);
		}
		if (remount(*p, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0 &&
		    remount(*p, MS_RDONLY) < 0)
			return oci_msg(msg, n, errno, "linux.readonlyPaths: making %s read-only", *p);
	}
	if (s->root_readonly && remount("/", MS_RDONLY) < 0)
		return oci_msg(msg, n, errno, "root.readonly: remounting / read-only");
	if (s->rootfs_propagation && mount(NULL, "/", NULL, s->rootfs_propagation, NULL) < 0)
		return oci_msg(msg, n, errno, "linux.rootfsPropagation: applying it to /");
	return 0;
}
