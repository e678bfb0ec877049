/* SPDX-License-Identifier: Apache-2.0 */
/* A small QMP client: newline-delimited JSON over QEMU's monitor socket.
 * Only what the launcher needs: the greeting, qmp_capabilities, and
 * commands whose answers are matched by an "id" we choose. */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/vm.h"

#define QMP_MAX_LINE (1u << 20)

struct sp_qmp {
	int fd;
	sp_buf in;
	unsigned next_id;
};

static int wait_fd(int fd, short events, uint64_t deadline, const char *what,
		   sp_err **err)
{
	for (;;) {
		uint64_t now = sp_now_ns();
		if (now >= deadline)
			return sp_error(err, SP_ERR_TIMEOUT, "QMP: timed out %s", what);
		struct pollfd p = {.fd = fd, .events = events};
		int ms = (int)((deadline - now + 999999) / 1000000);
		int r = poll(&p, 1, ms);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return sp_error_sys(err, errno, "QMP: poll");
	}
}

/* One JSON line (without the newline) into *out. */
static int read_line(sp_qmp *q, json_t **out, uint64_t deadline, sp_err **err)
{
	for (;;) {
		uint8_t *nl = q->in.len ? memchr(q->in.data, '\n', q->in.len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - q->in.data);
			int r = sp_json_parse(out, q->in.data, n, "QMP message", err);
			memmove(q->in.data, nl + 1, q->in.len - n - 1);
			q->in.len -= n + 1;
			return r;
		}
		if (q->in.len >= QMP_MAX_LINE)
			return sp_error(err, SP_ERR_LIMIT, "QMP: message over %u bytes",
					QMP_MAX_LINE);
		if (wait_fd(q->fd, POLLIN, deadline, "waiting for QEMU's answer", err) < 0)
			return SP_ERR_TIMEOUT;
		sp_buf_reserve(&q->in, 4096);
		ssize_t r = read(q->fd, q->in.data + q->in.len, q->in.cap - q->in.len);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return sp_error_sys(err, errno, "QMP: read");
		if (r == 0)
			return sp_error(err, SP_ERR_PROTOCOL,
					"QMP: QEMU closed the monitor connection");
		q->in.len += (size_t)r;
	}
}

static int send_str(sp_qmp *q, const char *s, uint64_t deadline, sp_err **err)
{
	size_t len = strlen(s), off = 0;
	while (off < len) {
		if (wait_fd(q->fd, POLLOUT, deadline, "sending a command", err) < 0)
			return SP_ERR_TIMEOUT;
		ssize_t r = send(q->fd, s + off, len - off, MSG_NOSIGNAL);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return sp_error_sys(err, errno, "QMP: send");
		off += (size_t)r;
	}
	return 0;
}

static int execute(sp_qmp *q, const char *cmd, const char *args_json, char **ret,
		   uint64_t deadline, sp_err **err)
{
	unsigned id = ++q->next_id;
	_cleanup_free_ char *msg = sp_xasprintf(
		"{\"execute\":\"%s\",\"id\":\"sp-%u\"%s%s}\n", cmd, id,
		args_json ? ",\"arguments\":" : "", args_json ? args_json : "");
	if (send_str(q, msg, deadline, err) < 0)
		return sp_error_wrap(err, "QMP %s", cmd);
	char want[32];
	snprintf(want, sizeof(want), "sp-%u", id);
	for (;;) {
		_cleanup_json_ json_t *j = NULL;
		if (read_line(q, &j, deadline, err) < 0)
			return sp_error_wrap(err, "QMP %s", cmd);
		if (!json_is_object(j))
			continue;
		json_t *jid = json_object_get(j, "id");
		if (!json_is_string(jid) || strcmp(json_string_value(jid), want))
			continue; /* an event or a stale answer */
		json_t *e = json_object_get(j, "error");
		if (e) {
			const char *desc = json_string_value(json_object_get(e, "desc"));
			return sp_error(err, SP_ERR_PROTOCOL, "QMP %s failed: %s", cmd,
					desc ? desc : "(no description)");
		}
		json_t *r = json_object_get(j, "return");
		if (!r)
			return sp_error(err, SP_ERR_PROTOCOL,
					"QMP %s: answer has neither return nor error", cmd);
		if (ret)
			*ret = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
		return 0;
	}
}

int sp_qmp_connect(sp_qmp **out, const char *path, uint64_t timeout_ns,
		   sp_err **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return sp_error(err, SP_ERR_INVALID, "QMP socket path `%s` is too long",
				path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return sp_error_sys(err, errno, "QMP: socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return sp_error_sys(err, e, "QMP: connect to `%s`", path);
	}
	sp_qmp *q = sp_xzalloc(sizeof(*q));
	q->fd = fd;
	uint64_t deadline = sp_now_ns() + timeout_ns;
	_cleanup_json_ json_t *greeting = NULL;
	if (read_line(q, &greeting, deadline, err) < 0 ||
	    !json_object_get(greeting, "QMP")) {
		sp_qmp_close(q);
		sp_error(err, SP_ERR_PROTOCOL, "no QMP greeting");
		return sp_error_wrap(err, "QMP socket `%s`", path);
	}
	if (execute(q, "qmp_capabilities", NULL, NULL, deadline, err) < 0) {
		sp_qmp_close(q);
		return SP_ERR_PROTOCOL;
	}
	*out = q;
	return 0;
}

int sp_qmp_execute(sp_qmp *q, const char *cmd, const char *args_json, char **ret,
		   uint64_t timeout_ns, sp_err **err)
{
	return execute(q, cmd, args_json, ret, sp_now_ns() + timeout_ns, err);
}

void sp_qmp_close(sp_qmp *q)
{
	if (!q)
		return;
	close(q->fd);
	sp_buf_free(&q->in);
	free(q);
}
