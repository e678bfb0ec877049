/* SPDX-License-Identifier: Apache-2.0 */
/* Sealed secrets in a container's env (docs/agent.md, "Sealed secrets").
 * The policy decided first: a variable it marks sealed carries a sealed
 * value naming one of its listed resources, and no other variable carries
 * one (docs/policy.md, "Sealed values"). CreateContainer then unseals each
 * marked variable through the KBS client (attestation with this guest's
 * TEE, the broker the policy names) and gives the engine the secret; the
 * host keeps only the sealed form. The secrets are kept with the container
 * so that an exec (whose env the host sends as the container's, sealed
 * form included) gets them too, without going back to the broker. */
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "agent_internal.h"
#include "sealpod/file.h"
#include "sealpod/log.h"
#include "sealpod/sealed.h"
#ifdef SP_AGENT_HAVE_POLICY
#include "sealpod/policy.h"
#endif

/* Per broker request, as the workload endpoint. */
#define UNSEAL_TIMEOUT_S 10

struct pending {
	size_t pos;         /* index in process.env */
	char *name;
	char *sealed;       /* the value as the host sent it */
	const json_t *resources;
};

#ifdef SP_AGENT_HAVE_POLICY
/* One sealed value: parsed, checked again against the policy's list
 * (the evaluator already did for env: this is the agent's own gate),
 * unsealed. what: "variable" or "file", for the message; an environment
 * value (env) cannot hold a NUL byte. */
static int unseal_value(sp_sealed_kbs *k, const char *sealed, size_t slen,
			const json_t *resources, bool env, uint8_t **out, size_t *len,
			sp_err **err)
{
	sp_sealed_secret s = {0};
	int r = sp_sealed_parse(&s, sealed, slen, err);
	if (r < 0)
		return r;
	const sp_sealed_uri *u = &s.resource;
	if (s.type != SP_SEALED_VAULT || strcmp(s.provider, "kbs") || u->host[0] ||
	    !sp_policy_sealed_listed(resources, u->repo, u->type, u->tag))
		r = sp_error(err, SP_ERR_DENIED,
			     "sealed secret %s/%s/%s: not a resource the policy lists for this %s",
			     u->repo, u->type, u->tag, env ? "variable" : "file");
	sp_sealed_opts o;
	sp_sealed_opts_init(&o);
	o.allowed_host = NULL; /* only kbs:///...: the policy's broker */
	if (r == 0)
		r = sp_sealed_unseal(out, len, &s, sp_sealed_kbs_fetch, k, &o, err);
	if (r == 0 && env && memchr(*out, 0, *len)) {
		explicit_bzero(*out, *len);
		free(*out);
		*out = NULL;
		r = sp_error(err, SP_ERR_INVALID,
			     "sealed secret %s/%s/%s: the resource contains a NUL byte and cannot be an environment value",
			     u->repo, u->type, u->tag);
	}
	sp_sealed_clear(&s);
	return r;
}

static int unseal_one(sp_sealed_kbs *k, const struct pending *p, uint8_t **out, size_t *len,
		      sp_err **err)
{
	return unseal_value(k, p->sealed, strlen(p->sealed), p->resources, true, out, len, err);
}
#endif

static void pending_clear(struct pending *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].sealed);
	}
	free(p);
}

/* One KBS client for a request's unsealing: the policy's broker, its CA,
 * this guest's TEE evidence. */
static void broker_client(sp_agent *a, const struct attest_kbs_ref *kr, sp_kbs_client_opts *o,
			  sp_sealed_kbs *k)
{
	sp_kbs_client_opts_init(o);
	o->ca_file = kr->ca_file;
	o->timeout_s = UNSEAL_TIMEOUT_S;
	*k = (sp_sealed_kbs){.url = kr->url, .tee = a->tee.kind, .evidence = agent_kbs_evidence,
			     .evidence_ctx = a, .opts = o};
}

int agent_unseal_env(sp_agent *a, int index, json_t *process, json_t **secrets, sp_err **err)
{
	*secrets = NULL;
#ifdef SP_AGENT_HAVE_POLICY
	json_t *env = json_object_get(process, "env");
	size_t n = json_array_size(env);
	struct pending *p = NULL;
	size_t np = 0;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(env, i));
		const char *eq = s ? strchr(s, '=') : NULL;
		if (!eq)
			continue;
		_cleanup_free_ char *name = sp_xstrndup(s, (size_t)(eq - s));
		const json_t *res = index >= 0 ? sp_policy_env_sealed(a->policy, (size_t)index, name)
					       : NULL;
		if (!res) {
			/* The evaluator refuses these; never unsealed here. */
			if (sp_sealed_is_sealed(eq + 1, strlen(eq + 1))) {
				pending_clear(p, np);
				return sp_error(err, SP_ERR_DENIED,
						"env %s: a sealed value in a variable the policy does not mark sealed",
						name);
			}
			continue;
		}
		p = sp_xrealloc(p, (np + 1) * sizeof(*p));
		p[np++] = (struct pending){i, sp_xstrdup(name), sp_xstrdup(eq + 1), res};
	}
	if (!np)
		return 0;
	struct attest_kbs_ref kr;
	if (attest_kbs_ref(a, &kr) < 0) {
		int r = sp_error(err, SP_ERR_UNSUPPORTED,
				 "env %s: a sealed secret needs the policy's key broker (policy.kbs) and a TEE to attest with",
				 p[0].name);
		pending_clear(p, np);
		return r;
	}
	/* As for a registry pull: through the pod's network when it has the
	 * guest's device (this thread enters the pod's namespace and returns
	 * below), else the uplink (QEMU user networking, the host as
	 * 10.0.2.2); natively neither is touched. */
	__attribute__((cleanup(agent_pull_net_leave))) int saved_ns = -1;
	if (agent_pull_net_enter(a, &saved_ns, err) < 0) {
		sp_error_wrap(err, "env %s: the key broker %s", p[0].name, kr.url);
		pending_clear(p, np);
		return (*err)->code;
	}
	sp_kbs_client_opts o;
	sp_sealed_kbs k;
	broker_client(a, &kr, &o, &k);
	json_t *out = json_object();
	int r = 0;
	/* Network I/O: without the agent lock (the caller holds a
	 * reference on its container and looks at its phase afterwards).
	 * One attestation for all the container's sealed values. */
	pthread_mutex_unlock(&a->lock);
	for (size_t i = 0; r == 0 && i < np; i++) {
		_cleanup_free_ uint8_t *plain = NULL;
		size_t len = 0;
		if ((r = unseal_one(&k, &p[i], &plain, &len, err)) < 0) {
			sp_error_wrap(err, "env %s", p[i].name);
			break;
		}
		char *entry = sp_xasprintf("%s=%.*s", p[i].name, (int)len, (const char *)plain);
		explicit_bzero(plain, len);
		json_array_set_new(env, p[i].pos, json_string(entry));
		json_object_set_new(out, p[i].name, json_pack("[s,s]", p[i].sealed, entry));
		explicit_bzero(entry, strlen(entry));
		free(entry);
		sp_log_info("env %s: sealed secret unsealed", p[i].name);
	}
	sp_sealed_kbs_clear(&k);
	pthread_mutex_lock(&a->lock);
	pending_clear(p, np);
	if (r < 0) {
		json_decref(out);
		return r;
	}
	*secrets = out;
	return 0;
#else
	(void)a;
	(void)index;
	(void)process;
	(void)err;
	return 0;
#endif
}

int agent_unseal_exec_env(const json_t *secrets, json_t *process, bool *changed, sp_err **err)
{
	*changed = false;
	json_t *env = json_object_get(process, "env");
	size_t n = json_array_size(env);
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(env, i));
		const char *eq = s ? strchr(s, '=') : NULL;
		if (!eq || !sp_sealed_is_sealed(eq + 1, strlen(eq + 1)))
			continue;
		_cleanup_free_ char *name = sp_xstrndup(s, (size_t)(eq - s));
		const json_t *rec = json_object_get(secrets, name);
		/* Only the value CreateContainer unsealed for this variable:
		 * an exec cannot make the agent fetch anything. */
		if (!rec || strcmp(json_string_value(json_array_get(rec, 0)), eq + 1))
			return sp_error(err, SP_ERR_DENIED,
					"env %s: a sealed value the container was not created with (execs get the container's unsealed secrets only)",
					name);
		json_array_set(env, i, json_array_get(rec, 1));
		*changed = true;
	}
	return 0;
}

/* ---- Secret volume files (requests.sealed_files) ---- */

#define GUEST_SANDBOX "/run/sealpod/sandbox/"
#define COPY_MAX_DEPTH 16
/* A sealed value (SP_SEALED_MAX) and a trailing newline or two. */
#define SEALED_FILE_MAX (SP_SEALED_MAX + 16)

#ifdef SP_AGENT_HAVE_POLICY
struct sealed_vol {
	size_t pos;          /* index in mounts */
	char *dir;           /* the volume's guest path (the policy's key) */
	const json_t *files; /* {key: [repo/type/tag]} */
};

static int copy_reg(int sfd, int dfd, const char *name, const struct stat *st, sp_err **err)
{
	_cleanup_close_ int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return sp_error_sys(err, errno, "open %s", name);
	_cleanup_close_ int out =
		openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		       st->st_mode & 0777);
	if (out < 0)
		return sp_error_sys(err, errno, "create %s", name);
	char buf[16384];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sp_error_sys(err, errno, "read %s", name);
		if (n == 0)
			break;
		if (sp_write_all(out, buf, (size_t)n) < 0)
			return sp_error_sys(err, errno, "write %s", name);
	}
	if (fchmod(out, st->st_mode & 0777) < 0)
		return sp_error_sys(err, errno, "chmod %s", name);
	if (geteuid() == 0 && fchown(out, st->st_uid, st->st_gid) < 0)
		return sp_error_sys(err, errno, "chown %s", name);
	return 0;
}

/* Copies the volume as CopyFile left it: directories, regular files and
 * (relative, checked by CopyFile) symlinks; nothing is followed. Files a
 * CopyFile is still writing (.NAME.sealpod-tmp) are left out. */
static int copy_tree(int sfd, int dfd, int depth, sp_err **err)
{
	if (depth > COPY_MAX_DEPTH)
		return sp_error(err, SP_ERR_LIMIT, "deeper than %d", COPY_MAX_DEPTH);
	int dup_fd = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return sp_error_sys(err, errno, "read directory");
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (errno = 0, de = readdir(d))) {
		const char *n = de->d_name;
		size_t nl = strlen(n);
		if (!strcmp(n, ".") || !strcmp(n, "..") ||
		    (n[0] == '.' && nl > 13 && !strcmp(n + nl - 13, ".sealpod-tmp")))
			continue;
		struct stat st;
		if (fstatat(sfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = sp_error_sys(err, errno, "stat %s", n);
		} else if (S_ISDIR(st.st_mode)) {
			if (mkdirat(dfd, n, st.st_mode & 0777) < 0) {
				r = sp_error_sys(err, errno, "mkdir %s", n);
				break;
			}
			_cleanup_close_ int s2 =
				openat(sfd, n, O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC);
			_cleanup_close_ int d2 =
				openat(dfd, n, O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC);
			if (s2 < 0 || d2 < 0)
				r = sp_error_sys(err, errno, "open directory %s", n);
			else if ((r = copy_tree(s2, d2, depth + 1, err)) == 0 && geteuid() == 0 &&
				 fchown(d2, st.st_uid, st.st_gid) < 0)
				r = sp_error_sys(err, errno, "chown %s", n);
		} else if (S_ISLNK(st.st_mode)) {
			char t[4097];
			ssize_t tl = readlinkat(sfd, n, t, sizeof(t) - 1);
			if (tl < 0 || (size_t)tl >= sizeof(t) - 1) {
				r = sp_error_sys(err, tl < 0 ? errno : ENAMETOOLONG, "readlink %s", n);
				break;
			}
			t[tl] = 0;
			if (symlinkat(t, dfd, n) < 0)
				r = sp_error_sys(err, errno, "symlink %s", n);
		} else if (S_ISREG(st.st_mode)) {
			r = copy_reg(sfd, dfd, n, &st, err);
		}
	}
	if (r == 0 && errno)
		r = sp_error_sys(err, errno, "read directory");
	closedir(d);
	return r;
}

/* openat2 below root, following the volume's own (relative) links. */
static int open_beneath(int root, const char *key, int flags)
{
	struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC),
			       .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
	return (int)syscall(SYS_openat2, root, key, &how, sizeof(how));
}

/* One marked file of the copy: its sealed content (trailing newlines
 * ignored) replaced by the secret. A key the host did not send is left
 * out (the host can always withhold a file); one that is not a regular
 * file, or not sealed, fails. */
static int unseal_file(sp_sealed_kbs *k, int root, const char *key, const json_t *resources,
		       sp_err **err)
{
	_cleanup_close_ int fd = open_beneath(root, key, O_RDWR | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT) {
		sp_log_info("file %s: not in the volume, nothing to unseal", key);
		return 0;
	}
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return sp_error_sys(err, errno, "open");
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)SEALED_FILE_MAX)
		return sp_error(err, SP_ERR_INVALID,
				"not a sealed secret (%s)", S_ISREG(st.st_mode) ? "over 64 KiB" : "not a regular file");
	_cleanup_free_ char *text = sp_xmalloc((size_t)st.st_size + 1);
	size_t n = 0;
	while (n < (size_t)st.st_size) {
		ssize_t got = pread(fd, text + n, (size_t)st.st_size - n, (off_t)n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return sp_error_sys(err, got < 0 ? errno : EIO, "read");
		n += (size_t)got;
	}
	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		n--;
	text[n] = 0;
	if (!sp_sealed_is_sealed(text, n))
		return sp_error(err, SP_ERR_DENIED,
				"the policy marks it sealed, but it is not a sealed secret (not shown)");
	_cleanup_free_ uint8_t *plain = NULL;
	size_t len = 0;
	int r = unseal_value(k, text, n, resources, false, &plain, &len, err);
	if (r < 0)
		return r;
	if (ftruncate(fd, 0) < 0 || (len && pwrite(fd, plain, len, 0) != (ssize_t)len))
		r = sp_error_sys(err, errno, "write the secret");
	explicit_bzero(plain, len);
	return r;
}
#endif

int agent_unseal_volumes(sp_agent *a, const char *bundle, json_t *spec, sp_err **err)
{
#ifdef SP_AGENT_HAVE_POLICY
	if (!a->policy)
		return 0;
	const size_t gl = strlen(GUEST_SANDBOX);
	json_t *mounts = json_object_get(spec, "mounts");
	struct sealed_vol *v = NULL;
	size_t nv = 0;
	size_t i;
	json_t *m;
	int r = 0;
	json_array_foreach(mounts, i, m) {
		const char *s = json_string_value(json_object_get(m, "source"));
		if (!s || strncmp(s, GUEST_SANDBOX, gl))
			continue;
		/* The volume is <kind>/<name>: its first two components. */
		const char *slash = strchr(s + gl, '/');
		const char *end = slash ? strchr(slash + 1, '/') : NULL;
		_cleanup_free_ char *dir = end ? sp_xstrndup(s, (size_t)(end - s)) : sp_xstrdup(s);
		const json_t *files = sp_policy_sealed_files(a->policy, dir);
		if (!files)
			continue;
		if (end) {
			r = sp_error(err, SP_ERR_UNSUPPORTED,
				     "mounts[%zu]: a sub-path of volume %s, whose files are sealed, is not supported (mount the volume)",
				     i, dir);
			break;
		}
		v = sp_xrealloc(v, (nv + 1) * sizeof(*v));
		v[nv++] = (struct sealed_vol){i, sp_xstrdup(dir), files};
	}
	struct attest_kbs_ref kr;
	if (r == 0 && nv && attest_kbs_ref(a, &kr) < 0)
		r = sp_error(err, SP_ERR_UNSUPPORTED,
			     "volume %s: a sealed file needs the policy's key broker (policy.kbs) and a TEE to attest with",
			     v[0].dir);
	if (r < 0 || !nv) {
		for (size_t k = 0; k < nv; k++)
			free(v[k].dir);
		free(v);
		return r;
	}
	/* As for the env: through the pod's network when it has the device. */
	__attribute__((cleanup(agent_pull_net_leave))) int saved_ns = -1;
	if (agent_pull_net_enter(a, &saved_ns, err) < 0) {
		sp_error_wrap(err, "volume %s: the key broker %s", v[0].dir, kr.url);
		for (size_t k = 0; k < nv; k++)
			free(v[k].dir);
		free(v);
		return (*err)->code;
	}
	_cleanup_free_ char *sb = sandbox_dir(a);
	_cleanup_free_ char *base = sp_xasprintf("%s/sealed-volumes", bundle);
	sp_kbs_client_opts o;
	sp_sealed_kbs k;
	broker_client(a, &kr, &o, &k);
	char **copies = sp_xcalloc(nv, sizeof(char *));
	/* File and broker I/O without the agent lock (the caller holds a
	 * reference on its container and looks at its phase afterwards). */
	pthread_mutex_unlock(&a->lock);
	if (mkdir(base, 0700) < 0 && errno != EEXIST)
		r = sp_error_sys(err, errno, "volume %s: %s", v[0].dir, base);
	for (size_t q = 0; r == 0 && q < nv; q++) {
		copies[q] = sp_xasprintf("%s/%zu", base, q);
		_cleanup_free_ char *src = sp_xasprintf("%s/%s", sb, v[q].dir + gl);
		_cleanup_close_ int sfd = open(src, O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (sfd < 0 || fstat(sfd, &st) < 0) {
			r = sp_error_sys(err, errno,
					 "volume %s: open (its files come by CopyFile first)", v[q].dir);
			break;
		}
		if (mkdir(copies[q], st.st_mode & 0777) < 0) {
			r = sp_error_sys(err, errno, "volume %s: %s", v[q].dir, copies[q]);
			break;
		}
		_cleanup_close_ int dfd =
			open(copies[q], O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC);
		if (dfd < 0) {
			r = sp_error_sys(err, errno, "volume %s: %s", v[q].dir, copies[q]);
			break;
		}
		if (copy_tree(sfd, dfd, 0, err) < 0) {
			r = sp_error_wrap(err, "volume %s: copy", v[q].dir);
			break;
		}
		const char *key;
		json_t *res;
		json_object_foreach((json_t *)v[q].files, key, res) {
			if (unseal_file(&k, dfd, key, res, err) < 0) {
				r = sp_error_wrap(err, "volume %s file %s", v[q].dir, key);
				break;
			}
			sp_log_info("volume %s file %s: sealed secret unsealed", v[q].dir, key);
		}
	}
	sp_sealed_kbs_clear(&k);
	pthread_mutex_lock(&a->lock);
	for (size_t q = 0; q < nv; q++) {
		if (r == 0)
			json_object_set_new(json_array_get(mounts, v[q].pos), "source",
					    json_string(copies[q]));
		free(copies[q]);
		free(v[q].dir);
	}
	free(copies);
	free(v);
	return r;
#else
	(void)a;
	(void)bundle;
	(void)spec;
	(void)err;
	return 0;
#endif
}
