/* SPDX-License-Identifier: Apache-2.0 */
/* OCI hooks: parsed from the spec, run with the container state on stdin
 * and an optional timeout. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "oci-internal.h"
#include "sealpod/file.h"

static int parse_list(struct oci_hook **out, size_t *n, const json_t *h,
		      const char *key, sp_err **err)
{
	json_t *a = NULL;
	char p[64];
	snprintf(p, sizeof(p), "hooks.%s", key);
	if (sp_json_get_array(h, key, false, &a, "hooks", err) < 0)
		return (*err)->code;
	if (!a)
		return 0;
	if (json_array_size(a) > 256)
		return sp_error(err, SP_ERR_LIMIT, "%s: too many hooks", p);
	*out = sp_xcalloc(json_array_size(a) + 1, sizeof(**out));
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) {
		char q[128];
		const char *path;
		struct oci_hook *k = &(*out)[i];
		snprintf(q, sizeof(q), "%s[%zu]", p, i);
		*n = i + 1;
		k->timeout = 0;
		if (sp_json_get_string(e, "path", true, &path, q, err) < 0 ||
		    sp_json_get_strv(e, "args", false, &k->args, q, err) < 0 ||
		    sp_json_get_strv(e, "env", false, &k->env, q, err) < 0 ||
		    sp_json_get_int(e, "timeout", false, &k->timeout, q, err) < 0)
			return (*err)->code;
		k->path = sp_xstrdup(path);
		if (path[0] != '/')
			return sp_error(err, SP_ERR_PARSE, "%s.path: `%s` is not absolute", q, path);
		if (json_object_get(e, "timeout") && k->timeout <= 0)
			return sp_error(err, SP_ERR_PARSE, "%s.timeout: must be positive", q);
	}
	return 0;
}

int oci_hooks_parse(struct oci_hooks *h, const json_t *j, sp_err **err)
{
	if (parse_list(&h->prestart, &h->n_prestart, j, "prestart", err) < 0 ||
	    parse_list(&h->create_runtime, &h->n_create_runtime, j, "createRuntime", err) < 0 ||
	    parse_list(&h->create_container, &h->n_create_container, j, "createContainer", err) < 0 ||
	    parse_list(&h->start_container, &h->n_start_container, j, "startContainer", err) < 0 ||
	    parse_list(&h->poststart, &h->n_poststart, j, "poststart", err) < 0 ||
	    parse_list(&h->poststop, &h->n_poststop, j, "poststop", err) < 0)
		return (*err)->code;
	return 0;
}

static void clear_list(struct oci_hook *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(l[i].path);
		sp_strv_freep(&l[i].args);
		sp_strv_freep(&l[i].env);
	}
	free(l);
}

void oci_hooks_clear(struct oci_hooks *h)
{
	clear_list(h->prestart, h->n_prestart);
	clear_list(h->create_runtime, h->n_create_runtime);
	clear_list(h->create_container, h->n_create_container);
	clear_list(h->start_container, h->n_start_container);
	clear_list(h->poststart, h->n_poststart);
	clear_list(h->poststop, h->n_poststop);
	memset(h, 0, sizeof(*h));
}

static int run_one(const struct oci_hook *h, const char *what,
		   const char *state, sp_err **err)
{
	int p[2];
	size_t len = strlen(state);
	/* The state goes into the pipe before the hook starts, so a hook
	 * that never reads stdin can neither block us nor raise SIGPIPE. */
	if (len > 60000)
		return sp_error(err, SP_ERR_LIMIT, "%s: the state is too large for a hook", what);
	if (pipe2(p, O_CLOEXEC) < 0)
		return sp_error_sys(err, errno, "%s: pipe", what);
	fcntl(p[1], F_SETPIPE_SZ, 65536);
	if (sp_write_all(p[1], state, len) < 0) {
		close(p[0]);
		close(p[1]);
		return sp_error_sys(err, errno, "%s: writing the state", what);
	}
	close(p[1]);
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		return sp_error_sys(err, errno, "%s: fork", what);
	}
	if (pid == 0) {
		dup2(p[0], 0);
		char *dflt[] = {h->path, NULL};
		char *noenv[] = {NULL};
		execve(h->path, h->args ? h->args : dflt, h->env ? h->env : noenv);
		dprintf(2, "%s: exec %s: %s\n", what, h->path, strerror(errno));
		_exit(127);
	}
	close(p[0]);
	int status = 0;
	if (h->timeout > 0) {
		_cleanup_close_ int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pfd >= 0) {
			struct pollfd pf = {.fd = pfd, .events = POLLIN};
			int64_t ms = h->timeout > 86400 ? 86400000 : h->timeout * 1000;
			int r;
			do
				r = poll(&pf, 1, (int)ms);
			while (r < 0 && errno == EINTR);
			if (r == 0) {
				kill(pid, SIGKILL);
				sp_waitpid(pid, &status, 0);
				return sp_error(err, SP_ERR_TIMEOUT,
						"%s (%s): did not finish within %llds", what,
						h->path, (long long)h->timeout);
			}
		}
	}
	if (sp_waitpid(pid, &status, 0) < 0)
		return sp_error_sys(err, errno, "%s: waiting for %s", what, h->path);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		return sp_error(err, SP_ERR_SYSTEM, "%s (%s): killed by signal %d", what,
				h->path, WTERMSIG(status));
	return sp_error(err, SP_ERR_SYSTEM, "%s (%s): exited with status %d", what,
			h->path, WEXITSTATUS(status));
}

int oci_hooks_run(const struct oci_hook *h, size_t n, const char *kind,
		  const char *state_json, sp_err **err)
{
	for (size_t i = 0; i < n; i++) {
		char what[64];
		snprintf(what, sizeof(what), "hooks.%s[%zu]", kind, i);
		if (run_one(&h[i], what, state_json, err) < 0)
			return (*err)->code;
	}
	return 0;
}
