/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded output streams. The I/O thread reads a process's pipe (or pty)
 * into a ring buffer of at most `cap` bytes; when the buffer is full it
 * takes the fd out of the epoll set, so the kernel pipe fills and the
 * writer blocks. Readers (ReadStdout) take bytes out and put the fd back.
 * Output is therefore never dropped, and memory stays bounded whatever
 * the container writes and however slowly the host reads. */
#include <string.h>
#include <sys/epoll.h>

#include "agent_internal.h"

#define TAG_STREAM 1u

void stream_init(stream *s, proc *p, int which, size_t cap, int fd)
{
	memset(s, 0, sizeof(*s));
	s->proc = p;
	s->which = which;
	s->cap = cap;
	s->fd = fd;
	s->eof = fd < 0;
}

static void set_events(sp_agent *a, stream *s, bool want)
{
	if (s->fd < 0 || s->armed == want)
		return;
	struct epoll_event ev = {.events = want ? EPOLLIN : 0,
				 .data.u64 = (uint64_t)(uintptr_t)s | TAG_STREAM};
	epoll_ctl(a->epfd, EPOLL_CTL_MOD, s->fd, &ev);
	s->armed = want;
}

void stream_arm(sp_agent *a, stream *s)
{
	if (s->fd < 0)
		return;
	struct epoll_event ev = {.events = EPOLLIN,
				 .data.u64 = (uint64_t)(uintptr_t)s | TAG_STREAM};
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, s->fd, &ev) == 0)
		s->armed = true;
}

void stream_close(sp_agent *a, stream *s)
{
	if (s->fd >= 0) {
		epoll_ctl(a->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
		s->fd = -1;
	}
	s->armed = false;
	s->eof = true;
}

void stream_fill(sp_agent *a, stream *s)
{
	if (s->fd < 0)
		return;
	if (!s->buf)
		s->buf = sp_xmalloc(s->cap);
	size_t space = s->cap - s->len;
	if (space == 0) {
		set_events(a, s, false); /* backpressure: the writer waits */
		return;
	}
	size_t tail = (s->head + s->len) % s->cap;
	size_t chunk = s->cap - tail;
	if (chunk > space)
		chunk = space;
	ssize_t n = read(s->fd, s->buf + tail, chunk);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* EOF, or EIO from a pty whose last slave closed. */
		stream_close(a, s);
		agent_broadcast(a);
		return;
	}
	s->len += (size_t)n;
	if (s->len == s->cap)
		set_events(a, s, false);
	agent_broadcast(a);
}

size_t stream_take(stream *s, uint8_t *dst, size_t max)
{
	size_t n = s->len < max ? s->len : max;
	size_t first = s->cap - s->head;
	if (first > n)
		first = n;
	if (n) {
		memcpy(dst, s->buf + s->head, first);
		memcpy(dst + first, s->buf, n - first);
	}
	s->head = (s->head + n) % (s->cap ? s->cap : 1);
	s->len -= n;
	if (s->len == 0)
		s->head = 0;
	return n;
}

void stream_resume(sp_agent *a, stream *s)
{
	if (s->len < s->cap)
		set_events(a, s, true);
}
