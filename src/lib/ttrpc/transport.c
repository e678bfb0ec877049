/* SPDX-License-Identifier: Apache-2.0 */
/* ttRPC transports: unix sockets, AF_VSOCK and virtio-serial ports. */
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "sealpod/ttrpc.h"
#include "ttrpc/internal.h"

uint64_t sp_ttrpc_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t sp_ttrpc_deadline(uint64_t timeout_ns)
{
	if (!timeout_ns)
		return 0;
	uint64_t now = sp_ttrpc_now_ns(), d;
	if (__builtin_add_overflow(now, timeout_ns, &d))
		return UINT64_MAX;
	return d;
}

int sp_ttrpc_poll_ms(uint64_t deadline_ns)
{
	if (!deadline_ns)
		return -1;
	uint64_t now = sp_ttrpc_now_ns();
	if (now >= deadline_ns)
		return 0;
	uint64_t ms = (deadline_ns - now + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

ssize_t sp_ttrpc_write(int fd, const void *buf, size_t n)
{
	ssize_t r = send(fd, buf, n, MSG_NOSIGNAL);
	if (r < 0 && errno == ENOTSOCK)
		r = write(fd, buf, n);
	return r;
}

int sp_ttrpc_write_all(int fd, const uint8_t *buf, size_t n,
		       uint64_t deadline_ns, sp_err **err)
{
	while (n > 0) {
		ssize_t w = sp_ttrpc_write(fd, buf, n);
		if (w > 0) {
			buf += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int ms = sp_ttrpc_poll_ms(deadline_ns);
			if (ms == 0)
				return sp_error(err, SP_ERR_TIMEOUT,
						"deadline passed while sending");
			if (poll(&p, 1, ms) < 0 && errno != EINTR)
				return sp_error_sys(err, errno, "poll");
			continue;
		}
		return sp_error_sys(err, w < 0 ? errno : EPIPE, "send");
	}
	return 0;
}

void sp_ttrpc_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	*pid = -1;
	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0 &&
	    len == sizeof(uc) && uc.pid > 0) {
		*pid = uc.pid;
		*uid = uc.uid;
		*gid = uc.gid;
	}
}

enum addr_kind { ADDR_UNIX, ADDR_VSOCK, ADDR_SERIAL };

typedef struct addr {
	enum addr_kind kind;
	const char *path;   /* unix, serial */
	unsigned cid, port; /* vsock */
} addr;

static bool parse_u32(const char *s, size_t n, unsigned *out)
{
	if (n == 0 || n > 10)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (unsigned)v;
	return true;
}

static int parse_address(addr *a, const char *address, bool listening,
			 sp_err **err)
{
	memset(a, 0, sizeof(*a));
	const char *rest;
	if (!address || !*address)
		return sp_error(err, SP_ERR_INVALID,
				"empty ttrpc address; use unix:PATH, vsock:CID:PORT or serial:PATH");
	if (address[0] == '/') {
		a->kind = ADDR_UNIX;
		a->path = address;
	} else if (!strncmp(address, "unix://", 7) || !strncmp(address, "unix:", 5)) {
		a->kind = ADDR_UNIX;
		a->path = address + (address[5] == '/' && address[6] == '/' ? 7 : 5);
	} else if (!strncmp(address, "serial:", 7)) {
		a->kind = ADDR_SERIAL;
		a->path = address + 7;
	} else if (!strncmp(address, "vsock:", 6)) {
		a->kind = ADDR_VSOCK;
		rest = address + 6;
		if (!strncmp(rest, "//", 2))
			rest += 2;
		const char *colon = strchr(rest, ':');
		if (!colon)
			return sp_error(err, SP_ERR_INVALID,
					"address `%s`: vsock needs CID:PORT, e.g. vsock:2:1024",
					address);
		size_t cl = (size_t)(colon - rest);
		if (listening && cl == 3 && !strncmp(rest, "any", 3))
			a->cid = VMADDR_CID_ANY;
		else if (!parse_u32(rest, cl, &a->cid))
			return sp_error(err, SP_ERR_INVALID,
					"address `%s`: vsock CID must be a number%s",
					address, listening ? " or `any`" : "");
		if (!parse_u32(colon + 1, strlen(colon + 1), &a->port))
			return sp_error(err, SP_ERR_INVALID,
					"address `%s`: vsock port must be a number",
					address);
		return 0;
	} else {
		return sp_error(err, SP_ERR_INVALID,
				"address `%s`: unknown scheme; use unix:PATH, vsock:CID:PORT or serial:PATH",
				address);
	}
	if (!*a->path)
		return sp_error(err, SP_ERR_INVALID, "address `%s` has no path",
				address);
	return 0;
}

static int unix_sockaddr(struct sockaddr_un *sun, const char *path,
			 sp_err **err)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path))
		return sp_error(err, SP_ERR_INVALID,
				"unix socket path `%s` is longer than %zu bytes; use a shorter directory",
				path, sizeof(sun->sun_path) - 1);
	strcpy(sun->sun_path, path);
	return 0;
}

/* connect() bounded by a deadline; fd ends up blocking. */
static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len,
			   uint64_t timeout_ns, const char *what, sp_err **err)
{
	uint64_t deadline = sp_ttrpc_deadline(timeout_ns);
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	for (;;) {
		if (connect(fd, sa, len) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			/* A unix listener's backlog is full: retry. */
			if (deadline && sp_ttrpc_now_ns() >= deadline)
				return sp_error(err, SP_ERR_TIMEOUT,
						"connect to %s: timed out", what);
			poll(NULL, 0, 5);
			continue;
		}
		if (errno != EINPROGRESS)
			return sp_error_sys(err, errno, "connect to %s", what);
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int r;
		do
			r = poll(&p, 1, sp_ttrpc_poll_ms(deadline));
		while (r < 0 && errno == EINTR);
		if (r == 0)
			return sp_error(err, SP_ERR_TIMEOUT,
					"connect to %s: timed out", what);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr)
			return sp_error_sys(err, soerr, "connect to %s", what);
		break;
	}
	fcntl(fd, F_SETFL, fl);
	return 0;
}

static int dial_unix(int *out, const char *path, uint64_t timeout_ns,
		     sp_err **err)
{
	struct sockaddr_un sun;
	if (unix_sockaddr(&sun, path, err) < 0)
		return SP_ERR_INVALID;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sp_error_sys(err, errno, "socket");
	char *what = sp_xasprintf("unix socket `%s`", path);
	int r = connect_timeout(fd, (struct sockaddr *)&sun, sizeof(sun),
				timeout_ns, what, err);
	free(what);
	if (r < 0)
		return r;
	*out = sp_steal_fd(&fd);
	return 0;
}

int sp_ttrpc_open_serial(int *out_fd, const char *path, uint64_t timeout_ns,
			 sp_err **err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return sp_error_sys(err, errno, "serial port `%s`", path);
	if (S_ISSOCK(st.st_mode))
		return dial_unix(out_fd, path, timeout_ns, err);
	int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return sp_error_sys(err, errno, "open serial port `%s`", path);
	*out_fd = fd;
	return 0;
}

int sp_ttrpc_dial(int *out_fd, const char *address, uint64_t timeout_ns,
		  sp_err **err)
{
	addr a;
	if (parse_address(&a, address, false, err) < 0)
		return SP_ERR_INVALID;
	switch (a.kind) {
	case ADDR_UNIX:
		return dial_unix(out_fd, a.path, timeout_ns, err);
	case ADDR_SERIAL:
		return sp_ttrpc_open_serial(out_fd, a.path, timeout_ns, err);
	case ADDR_VSOCK: {
		_cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return sp_error_sys(err, errno, "vsock socket for `%s`", address);
		struct sockaddr_vm svm = {.svm_family = AF_VSOCK,
					  .svm_cid = a.cid, .svm_port = a.port};
		char *what = sp_xasprintf("`%s`", address);
		int r = connect_timeout(fd, (struct sockaddr *)&svm, sizeof(svm),
					timeout_ns, what, err);
		free(what);
		if (r < 0)
			return r;
		*out_fd = sp_steal_fd(&fd);
		return 0;
	}
	}
	return sp_error(err, SP_ERR_INVALID, "address `%s`", address);
}

/* Is someone accepting on this unix socket path? */
static bool unix_socket_live(const char *path)
{
	int fd = -1;
	bool live = dial_unix(&fd, path, 200000000ull, NULL) == 0;
	if (fd >= 0)
		close(fd);
	return live;
}

int sp_ttrpc_listen(int *out_fd, const char *address, sp_err **err)
{
	addr a;
	if (parse_address(&a, address, true, err) < 0)
		return SP_ERR_INVALID;
	_cleanup_close_ int fd = -1;
	if (a.kind == ADDR_SERIAL)
		return sp_error(err, SP_ERR_INVALID,
				"address `%s`: a serial port is one stream, not a listener; open it with sp_ttrpc_dial and serve it with sp_ttrpc_server_add_stream",
				address);
	if (a.kind == ADDR_UNIX) {
		struct sockaddr_un sun;
		if (unix_sockaddr(&sun, a.path, err) < 0)
			return SP_ERR_INVALID;
		struct stat st;
		if (lstat(a.path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode))
				return sp_error(err, SP_ERR_EXISTS,
						"cannot listen on `%s`: it exists and is not a socket; remove it or choose another path",
						a.path);
			if (unix_socket_live(a.path))
				return sp_error(err, SP_ERR_EXISTS,
						"cannot listen on `%s`: another server is accepting there",
						a.path);
			unlink(a.path); /* stale, from a server that died */
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return sp_error_sys(err, errno, "socket");
		if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			return sp_error_sys(err, errno, "bind unix socket `%s`", a.path);
	} else {
		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return sp_error_sys(err, errno, "vsock socket for `%s`", address);
		struct sockaddr_vm svm = {.svm_family = AF_VSOCK,
					  .svm_cid = a.cid, .svm_port = a.port};
		if (bind(fd, (struct sockaddr *)&svm, sizeof(svm)) < 0)
			return sp_error_sys(err, errno, "bind `%s`", address);
	}
	if (listen(fd, 128) < 0)
		return sp_error_sys(err, errno, "listen on `%s`", address);
	*out_fd = sp_steal_fd(&fd);
	return 0;
}
