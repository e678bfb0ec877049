/* SPDX-License-Identifier: Apache-2.0 */
/* The KBS client's HTTP/1.1: POST and GET, one request per connection,
 * TLS through OpenSSL. Not libcurl: the guest agent uses this, and the
 * agent's TCB must not link host-only libraries (docs/kbs.md). */
#include <ctype.h>
#include <netdb.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "kbs-internal.h"
#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/net.h"

#define HEAD_MAX (16u * 1024)

void kbs_url_clear(struct kbs_url *u)
{
	free(u->host);
	free(u->port);
	memset(u, 0, sizeof(*u));
}

int kbs_url_parse(struct kbs_url *u, const char *url, sp_err **err)
{
	memset(u, 0, sizeof(*u));
	const char *p;
	if (!strncmp(url, "https://", 8)) {
		u->tls = true;
		p = url + 8;
	} else if (!strncmp(url, "http://", 7)) {
		p = url + 7;
	} else {
		return sp_error(err, SP_ERR_PARSE,
				"KBS URL `%.200s`: want http://HOST[:PORT] or https://...", url);
	}
	size_t n = strcspn(p, "/");
	if (p[n] && strcmp(p + n, "/"))
		return sp_error(err, SP_ERR_PARSE,
				"KBS URL `%.200s`: give the broker's root, without a path", url);
	const char *hs = p, *he, *port = NULL;
	if (*p == '[') {
		he = memchr(p, ']', n);
		if (!he)
			return sp_error(err, SP_ERR_PARSE, "KBS URL `%.200s`: unclosed [", url);
		hs = p + 1;
		if (he + 1 < p + n) {
			if (he[1] != ':')
				return sp_error(err, SP_ERR_PARSE, "KBS URL `%.200s`: bad port", url);
			port = he + 2;
		}
	} else {
		he = memchr(p, ':', n);
		if (he)
			port = he + 1;
		else
			he = p + n;
	}
	if (he == hs)
		return sp_error(err, SP_ERR_PARSE, "KBS URL `%.200s`: no host", url);
	size_t pl = port ? (size_t)(p + n - port) : 0;
	if (port && (pl == 0 || pl > 5 || strspn(port, "0123456789") < pl))
		return sp_error(err, SP_ERR_PARSE, "KBS URL `%.200s`: bad port", url);
	u->host = sp_xstrndup(hs, (size_t)(he - hs));
	u->port = port ? sp_xstrndup(port, pl) : sp_xstrdup(u->tls ? "443" : "80");
	return 0;
}

void kbs_http_resp_clear(struct kbs_http_resp *r)
{
	free(r->session);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

int kbs_http_parse_head(struct kbs_http_resp *r, const char *head, size_t len,
			int64_t *content_length, bool *chunked, sp_err **err)
{
	*content_length = -1;
	*chunked = false;
	const char *end = head + len, *line = head;
	bool first = true;
	while (line < end) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		if (!nl)
			nl = end;
		size_t ll = (size_t)(nl - line);
		if (ll && line[ll - 1] == '\r')
			ll--;
		if (first) {
			if (ll < 12 || strncmp(line, "HTTP/1.", 7) || line[8] != ' ' ||
			    !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
			    !isdigit((unsigned char)line[11]))
				return sp_error(err, SP_ERR_PROTOCOL, "KBS: not an HTTP/1.x response");
			r->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
			first = false;
		} else if (ll) {
			const char *colon = memchr(line, ':', ll);
			if (!colon)
				return sp_error(err, SP_ERR_PROTOCOL, "KBS: bad header line");
			size_t nlen = (size_t)(colon - line);
			const char *v = colon + 1;
			while (v < line + ll && (*v == ' ' || *v == '\t'))
				v++;
			size_t vl = (size_t)(line + ll - v);
			if (nlen == 14 && !strncasecmp(line, "Content-Length", 14)) {
				size_t digits = 0; /* the head need not end in a NUL */
				while (digits < vl && v[digits] >= '0' && v[digits] <= '9')
					digits++;
				if (vl == 0 || vl > 18 || digits < vl)
					return sp_error(err, SP_ERR_PROTOCOL, "KBS: bad Content-Length");
				int64_t x = 0;
				for (size_t i = 0; i < vl; i++)
					x = x * 10 + (v[i] - '0');
				*content_length = x;
			} else if (nlen == 17 && !strncasecmp(line, "Transfer-Encoding", 17)) {
				if (vl == 7 && !strncasecmp(v, "chunked", 7))
					*chunked = true;
				else
					return sp_error(err, SP_ERR_PROTOCOL,
							"KBS: unsupported Transfer-Encoding");
			} else if (nlen == 10 && !strncasecmp(line, "Set-Cookie", 10)) {
				size_t cl = strlen(SP_KBS_COOKIE);
				if (vl > cl + 1 && !strncmp(v, SP_KBS_COOKIE, cl) && v[cl] == '=') {
					const char *cv = v + cl + 1;
					size_t cvl = 0, max = vl - cl - 1;
					while (cvl < max && cv[cvl] != ';')
						cvl++;
					free(r->session);
					r->session = sp_xstrndup(cv, cvl);
				}
			}
		}
		line = nl + 1;
	}
	if (first)
		return sp_error(err, SP_ERR_PROTOCOL, "KBS: empty response");
	return 0;
}

static ssize_t conn_read(sp_net_conn *c, void *buf, size_t n, sp_err **err)
{
	if (c->ssl) {
		size_t got = 0;
		int r = SSL_read_ex(c->ssl, buf, n, &got);
		if (r == 1)
			return (ssize_t)got;
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_ZERO_RETURN)
			return 0;
		return sp_error(err, SP_ERR_PROTOCOL, "KBS: TLS read failed");
	}
	ssize_t r;
	do
		r = recv(c->fd, buf, n, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN ? sp_error(err, SP_ERR_TIMEOUT, "KBS: read timed out")
				       : sp_error_sys(err, errno, "KBS: read");
	return r;
}

static int conn_write(sp_net_conn *c, const void *d, size_t n, sp_err **err)
{
	if (c->ssl) {
		size_t w = 0;
		if (SSL_write_ex(c->ssl, d, n, &w) != 1 || w != n)
			return sp_error(err, SP_ERR_PROTOCOL, "KBS: TLS write failed");
		return 0;
	}
	if (sp_write_all(c->fd, d, n) < 0)
		return sp_error_sys(err, errno, "KBS: write");
	return 0;
}

/* Decodes a chunked body in place. */
static int dechunk(uint8_t *b, size_t len, size_t *out_len, sp_err **err)
{
	size_t i = 0, o = 0;
	for (;;) {
		uint64_t size = 0;
		size_t digits = 0;
		while (i < len && sp_hex_digit(b[i]) >= 0) {
			if (++digits > 15)
				return sp_error(err, SP_ERR_PROTOCOL, "KBS: bad chunk size");
			size = size << 4 | (uint64_t)sp_hex_digit(b[i++]);
		}
		if (!digits)
			return sp_error(err, SP_ERR_PROTOCOL, "KBS: bad chunk size");
		const uint8_t *nl = memchr(b + i, '\n', len - i);
		if (!nl)
			return sp_error(err, SP_ERR_PROTOCOL, "KBS: truncated chunked body");
		i = (size_t)(nl - b) + 1;
		if (size == 0)
			break;
		if (size > len - i)
			return sp_error(err, SP_ERR_PROTOCOL, "KBS: truncated chunk");
		memmove(b + o, b + i, (size_t)size);
		o += (size_t)size;
		i += (size_t)size;
		if (i + 2 <= len && b[i] == '\r' && b[i + 1] == '\n')
			i += 2;
		else if (i < len && b[i] == '\n')
			i += 1;
		else
			return sp_error(err, SP_ERR_PROTOCOL, "KBS: junk after a chunk");
	}
	b[o] = 0;
	*out_len = o;
	return 0;
}

int kbs_http_request(const struct kbs_url *u, const char *method, const char *path,
		     const char *const *headers, const void *body, size_t body_len,
		     const char *ca_file, int timeout_s, struct kbs_http_resp *resp,
		     sp_err **err)
{
	sp_net_conn c = SP_NET_CONN_INIT;
	sp_buf req = SP_BUF_INIT, in = SP_BUF_INIT;
	int r;
	memset(resp, 0, sizeof(*resp));
	if ((r = sp_net_dial(&c, u->host, u->port, u->tls, ca_file, timeout_s > 0 ? timeout_s : 30,
			     "KBS", err)) < 0)
		goto out;
	bool v6 = strchr(u->host, ':');
	sp_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: sealpod/%s\r\n"
			    "Connection: close\r\nAccept: application/json\r\n",
		      method, path, v6 ? "[" : "", u->host, v6 ? "]" : "", u->port,
		      SEALPOD_VERSION);
	for (size_t i = 0; headers && headers[i]; i++)
		sp_buf_printf(&req, "%s\r\n", headers[i]);
	if (body)
		sp_buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
			      body_len);
	sp_buf_printf(&req, "\r\n");
	if (body)
		sp_buf_put(&req, body, body_len);
	if ((r = conn_write(&c, req.data, req.len, err)) < 0)
		goto out;
	/* Read everything: the server closes after one response. */
	for (;;) {
		sp_buf_reserve(&in, 64 * 1024);
		ssize_t k = conn_read(&c, in.data + in.len, in.cap - in.len, err);
		if (k < 0) {
			r = (int)k;
			goto out;
		}
		if (k == 0)
			break;
		in.len += (size_t)k;
		if (in.len > KBS_HTTP_MAX + HEAD_MAX) {
			r = sp_error(err, SP_ERR_LIMIT, "KBS: response larger than %u bytes",
				     KBS_HTTP_MAX);
			goto out;
		}
	}
	sp_buf_terminate(&in);
	const uint8_t *he = in.len ? memmem(in.data, in.len, "\r\n\r\n", 4) : NULL;
	if (!he || (size_t)(he - in.data) > HEAD_MAX) {
		r = sp_error(err, SP_ERR_PROTOCOL, "KBS at %s:%s: no complete HTTP response",
			     u->host, u->port);
		goto out;
	}
	size_t hl = (size_t)(he - in.data) + 4;
	int64_t clen;
	bool chunked;
	if ((r = kbs_http_parse_head(resp, (const char *)in.data, hl - 2, &clen, &chunked,
				     err)) < 0)
		goto out;
	size_t blen = in.len - hl;
	resp->body = sp_xmalloc(blen + 1);
	memcpy(resp->body, in.data + hl, blen);
	resp->body[blen] = 0;
	if (chunked) {
		if ((r = dechunk(resp->body, blen, &blen, err)) < 0)
			goto out;
	} else if (clen >= 0) {
		if ((uint64_t)clen > blen) {
			r = sp_error(err, SP_ERR_PROTOCOL, "KBS: truncated response body");
			goto out;
		}
		blen = (size_t)clen;
		resp->body[blen] = 0;
	}
	resp->body_len = blen;
	r = 0;
out:
	if (r < 0)
		kbs_http_resp_clear(resp);
	sp_buf_free(&req);
	sp_buf_free(&in);
	sp_net_close(&c);
	return r;
}
