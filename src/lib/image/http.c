/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal HTTP/1.1 GET client over sockets and OpenSSL. The server is
 * untrusted: the head is bounded (64 KiB), Content-Length and chunk sizes
 * are parsed strictly, and both at once are refused (request smuggling
 * has no place here, but ambiguity is refused on principle). */
#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "http.h"
#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/net.h"
#include "sealpod/bytes.h"

#define HEAD_MAX (64u << 10)
#define IO_TIMEOUT_S 60

void img_url_clear(struct img_url *u)
{
	free(u->host);
	free(u->port);
	free(u->path);
	memset(u, 0, sizeof(*u));
}

int img_url_parse(struct img_url *u, const char *url, sp_err **err)
{
	memset(u, 0, sizeof(*u));
	const char *p;
	if (!strncmp(url, "https://", 8)) {
		u->tls = true;
		p = url + 8;
	} else if (!strncmp(url, "http://", 7)) {
		p = url + 7;
	} else {
		return sp_error(err, SP_ERR_PARSE, "URL `%.200s`: expected http:// or https://", url);
	}
	size_t hl = strcspn(p, "/?#");
	const char *rest = p + hl;
	_cleanup_free_ char *hostport = sp_xstrndup(p, hl);
	if (strchr(hostport, '@') || !*hostport)
		return sp_error(err, SP_ERR_PARSE, "URL `%.200s`: bad host", url);
	char *port = NULL;
	if (hostport[0] == '[') {
		char *e = strchr(hostport, ']');
		if (!e || (e[1] && e[1] != ':'))
			return sp_error(err, SP_ERR_PARSE, "URL `%.200s`: bad IPv6 host", url);
		*e = 0;
		u->host = sp_xstrdup(hostport + 1);
		port = e[1] ? e + 2 : NULL;
	} else {
		char *c = strchr(hostport, ':');
		if (c) {
			*c = 0;
			port = c + 1;
		}
		u->host = sp_xstrdup(hostport);
	}
	if (port) {
		if (!*port || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port)) {
			img_url_clear(u);
			return sp_error(err, SP_ERR_PARSE, "URL `%.200s`: bad port", url);
		}
		u->port = sp_xstrdup(port);
	} else {
		u->port = sp_xstrdup(u->tls ? "443" : "80");
	}
	for (const char *c = rest; *c; c++)
		if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '#') {
			if (*c == '#')
				break;
			img_url_clear(u);
			return sp_error(err, SP_ERR_PARSE, "URL `%.200s`: bad character", url);
		}
	size_t pl = strcspn(rest, "#");
	u->path = *rest == '/' ? sp_xstrndup(rest, pl) : sp_xasprintf("/%.*s", (int)pl, rest);
	return 0;
}

int img_url_resolve(struct img_url *out, const struct img_url *base,
		    const char *loc, sp_err **err)
{
	if (!strncmp(loc, "http://", 7) || !strncmp(loc, "https://", 8))
		return img_url_parse(out, loc, err);
	if (loc[0] != '/' || loc[1] == '/')
		return sp_error(err, SP_ERR_PROTOCOL, "redirect to `%.200s` is not supported", loc);
	_cleanup_free_ char *full = sp_xasprintf("%s://%s%s%s%s:%s%s", base->tls ? "https" : "http",
						 strchr(base->host, ':') ? "[" : "", base->host,
						 strchr(base->host, ':') ? "]" : "", "", base->port, loc);
	return img_url_parse(out, full, err);
}

void img_http_resp_clear(struct img_http_resp *r)
{
	free(r->content_type);
	free(r->www_authenticate);
	free(r->location);
	memset(r, 0, sizeof(*r));
}

static char *trim(const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return sp_xstrndup(s, n);
}

int img_http_parse_head(struct img_http_resp *r, const char *d, size_t len,
			sp_err **err)
{
	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	const char *end = d + len;
	const char *eol = memchr(d, '\n', len);
	if (!eol || len < 12 || strncmp(d, "HTTP/1.", 7) || (d[7] != '0' && d[7] != '1') ||
	    d[8] != ' ' || d[9] < '1' || d[9] > '5' || d[10] < '0' || d[10] > '9' ||
	    d[11] < '0' || d[11] > '9')
		return sp_error(err, SP_ERR_PROTOCOL, "HTTP: malformed status line");
	r->status = (d[9] - '0') * 100 + (d[10] - '0') * 10 + (d[11] - '0');
	bool has_cl = false, has_te = false;
	for (const char *p = eol + 1; p < end;) {
		const char *e = memchr(p, '\n', (size_t)(end - p));
		if (!e)
			break;
		size_t l = (size_t)(e - p);
		if (l && p[l - 1] == '\r')
			l--;
		if (l == 0)
			break;
		const char *colon = memchr(p, ':', l);
		if (!colon || colon == p || memchr(p, 0, l)) {
			img_http_resp_clear(r);
			return sp_error(err, SP_ERR_PROTOCOL, "HTTP: malformed header line");
		}
		size_t nl = (size_t)(colon - p);
		char *v = trim(colon + 1, l - nl - 1);
		char **dst = NULL;
		if (nl == 12 && !strncasecmp(p, "Content-Type", nl))
			dst = &r->content_type;
		else if (nl == 16 && !strncasecmp(p, "WWW-Authenticate", nl))
			dst = &r->www_authenticate;
		else if (nl == 8 && !strncasecmp(p, "Location", nl))
			dst = &r->location;
		if (dst) {
			free(*dst);
			*dst = v;
		} else if (nl == 14 && !strncasecmp(p, "Content-Length", nl)) {
			uint64_t x = 0;
			bool ok = *v && strlen(v) <= 18;
			for (char *c = v; ok && *c; c++)
				ok = *c >= '0' && *c <= '9', x = x * 10 + (uint64_t)(*c - '0');
			if (!ok || (has_cl && (int64_t)x != r->content_length)) {
				free(v);
				img_http_resp_clear(r);
				return sp_error(err, SP_ERR_PROTOCOL, "HTTP: bad Content-Length");
			}
			r->content_length = (int64_t)x;
			has_cl = true;
			free(v);
		} else if (nl == 17 && !strncasecmp(p, "Transfer-Encoding", nl)) {
			if (strcasecmp(v, "chunked")) {
				sp_error(err, SP_ERR_PROTOCOL,
					 "HTTP: transfer encoding `%.40s` is not supported", v);
				free(v);
				img_http_resp_clear(r);
				return SP_ERR_PROTOCOL;
			}
			has_te = r->chunked = true;
			free(v);
		} else {
			free(v);
		}
		p = e + 1;
	}
	if (has_cl && has_te) {
		img_http_resp_clear(r);
		return sp_error(err, SP_ERR_PROTOCOL,
				"HTTP: both Content-Length and chunked; refused as ambiguous");
	}
	return 0;
}

/* ---- connection ---- */
struct conn {
	img_stream s;
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	uint8_t *buf; /* read-ahead */
	size_t blen, boff;
	/* body framing */
	bool chunked, until_close, done;
	uint64_t left;       /* in the current chunk or the whole body */
	bool chunk_need_crlf;
};

static ssize_t raw_read(struct conn *c, void *buf, size_t n, sp_err **err)
{
	if (c->boff < c->blen) {
		size_t k = c->blen - c->boff < n ? c->blen - c->boff : n;
		memcpy(buf, c->buf + c->boff, k);
		c->boff += k;
		return (ssize_t)k;
	}
	if (c->ssl) {
		size_t got = 0;
		int r = SSL_read_ex(c->ssl, buf, n, &got);
		if (r == 1)
			return (ssize_t)got;
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_ZERO_RETURN)
			return 0;
		return sp_error(err, SP_ERR_PROTOCOL, "TLS read failed (%s)",
				ERR_reason_error_string(ERR_get_error()) ?: "connection reset");
	}
	ssize_t r;
	do
		r = recv(c->fd, buf, n, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN ? sp_error(err, SP_ERR_TIMEOUT, "registry: read timed out")
				       : sp_error_sys(err, errno, "registry: read");
	return r;
}

/* Reads a CRLF-terminated line (for chunk framing) into line. */
static int read_line(struct conn *c, char *line, size_t max, sp_err **err)
{
	size_t n = 0;
	for (;;) {
		char ch;
		ssize_t r = raw_read(c, &ch, 1, err);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return sp_error(err, SP_ERR_PROTOCOL, "HTTP: connection closed inside chunk framing");
		if (ch == '\n')
			break;
		if (n + 1 >= max)
			return sp_error(err, SP_ERR_PROTOCOL, "HTTP: chunk line too long");
		line[n++] = ch;
	}
	if (n && line[n - 1] == '\r')
		n--;
	line[n] = 0;
	return 0;
}

static ssize_t body_read(img_stream *s, void *buf, size_t n, sp_err **err)
{
	struct conn *c = (struct conn *)s;
	char line[4096];
	int r;
	if (c->done || n == 0)
		return 0;
	if (c->until_close) {
		ssize_t k = raw_read(c, buf, n, err);
		if (k == 0)
			c->done = true;
		return k;
	}
	if (c->chunked && c->left == 0) {
		if (c->chunk_need_crlf) {
			if ((r = read_line(c, line, sizeof(line), err)) < 0)
				return r;
			if (line[0])
				return sp_error(err, SP_ERR_PROTOCOL, "HTTP: junk after a chunk");
		}
		if ((r = read_line(c, line, sizeof(line), err)) < 0)
			return r;
		uint64_t size = 0;
		size_t i = 0;
		for (; line[i] && line[i] != ';'; i++) {
			int v = line[i] >= '0' && line[i] <= '9' ? line[i] - '0'
			      : line[i] >= 'a' && line[i] <= 'f' ? line[i] - 'a' + 10
			      : line[i] >= 'A' && line[i] <= 'F' ? line[i] - 'A' + 10 : -1;
			if (v < 0 || i >= 15)
				return sp_error(err, SP_ERR_PROTOCOL, "HTTP: bad chunk size");
			size = size << 4 | (uint64_t)v;
		}
		if (i == 0)
			return sp_error(err, SP_ERR_PROTOCOL, "HTTP: bad chunk size");
		if (size == 0) {
			/* Trailers, then the blank line. */
			for (int k = 0; k < 64; k++) {
				if ((r = read_line(c, line, sizeof(line), err)) < 0)
					return r;
				if (!line[0]) {
					c->done = true;
					return 0;
				}
			}
			return sp_error(err, SP_ERR_PROTOCOL, "HTTP: too many trailers");
		}
		c->left = size;
		c->chunk_need_crlf = true;
	}
	if (!c->chunked && c->left == 0) {
		c->done = true;
		return 0;
	}
	if (n > c->left)
		n = (size_t)c->left;
	ssize_t k = raw_read(c, buf, n, err);
	if (k == 0)
		return sp_error(err, SP_ERR_PROTOCOL, "HTTP: connection closed inside the body");
	if (k > 0)
		c->left -= (uint64_t)k;
	return k;
}

static void conn_close(img_stream *s)
{
	struct conn *c = (struct conn *)s;
	if (c->ssl) {
		SSL_free(c->ssl);
	}
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
}

static int conn_write(struct conn *c, const char *data, size_t len, sp_err **err)
{
	if (c->ssl) {
		size_t w;
		if (SSL_write_ex(c->ssl, data, len, &w) != 1 || w != len)
			return sp_error(err, SP_ERR_PROTOCOL, "TLS write failed");
		return 0;
	}
	if (sp_write_all(c->fd, data, len) < 0)
		return sp_error_sys(err, errno, "registry: write");
	return 0;
}

static int dial(struct conn *c, const struct img_url *u, const char *ca_file,
		const char *resolv_conf, sp_err **err)
{
	sp_net_conn n;
	int r = sp_net_dial_resolv(&n, u->host, u->port, u->tls, ca_file, resolv_conf,
				   IO_TIMEOUT_S, "registry", err);
	c->fd = n.fd;
	c->ctx = n.ctx;
	c->ssl = n.ssl;
	return r;
}

int img_http_get(const struct img_url *u, const char *const *headers,
		 const char *ca_file, const char *resolv_conf, struct img_http_resp *resp,
		 img_stream **body, sp_err **err)
{
	struct conn *c = sp_xzalloc(sizeof(*c));
	c->fd = -1;
	c->s.read = body_read;
	c->s.close = conn_close;
	int r = dial(c, u, ca_file, resolv_conf, err);
	if (r < 0) {
		conn_close(&c->s);
		return r;
	}
	sp_buf req = SP_BUF_INIT;
	bool v6 = strchr(u->host, ':');
	bool defport = !strcmp(u->port, u->tls ? "443" : "80");
	sp_buf_printf(&req, "GET %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUser-Agent: sealpod/%s\r\nConnection: close\r\n",
		      u->path, v6 ? "[" : "", u->host, v6 ? "]" : "", defport ? "" : ":",
		      defport ? "" : u->port, SEALPOD_VERSION);
	for (size_t i = 0; headers && headers[i]; i++)
		sp_buf_printf(&req, "%s\r\n", headers[i]);
	sp_buf_printf(&req, "\r\n");
	r = conn_write(c, (char *)req.data, req.len, err);
	sp_buf_free(&req);
	if (r < 0) {
		conn_close(&c->s);
		return r;
	}
	/* Read the head. */
	c->buf = sp_xmalloc(HEAD_MAX);
	size_t have = 0;
	char *end = NULL;
	while (!end) {
		if (have == HEAD_MAX) {
			conn_close(&c->s);
			return sp_error(err, SP_ERR_PROTOCOL, "HTTP: response head larger than %u bytes",
					HEAD_MAX);
		}
		ssize_t k = raw_read(c, c->buf + have, HEAD_MAX - have, err);
		if (k <= 0) {
			conn_close(&c->s);
			return k < 0 ? (int)k : sp_error(err, SP_ERR_PROTOCOL,
							 "HTTP: connection closed before a response from %s",
							 u->host);
		}
		have += (size_t)k;
		end = memmem(c->buf, have, "\r\n\r\n", 4);
	}
	size_t head_len = (size_t)(end - (char *)c->buf) + 4;
	if ((r = img_http_parse_head(resp, (char *)c->buf, head_len, err)) < 0) {
		conn_close(&c->s);
		return r;
	}
	c->blen = have;
	c->boff = head_len;
	c->chunked = resp->chunked;
	if (!c->chunked) {
		if (resp->content_length >= 0)
			c->left = (uint64_t)resp->content_length;
		else
			c->until_close = true;
	}
	*body = &c->s;
	return 0;
}
