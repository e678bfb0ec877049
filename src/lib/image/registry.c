/* SPDX-License-Identifier: Apache-2.0 */
/* The OCI distribution API as an untrusted store: manifests by tag or
 * digest, blobs by digest, anonymous, basic or bearer-token auth (the
 * WWW-Authenticate challenge names the token endpoint). Plain http is
 * allowed only when asked for and only to 127.0.0.1, ::1 or 10.0.2.2 (the
 * QEMU user-mode host). */
#include <string.h>
#include <strings.h>

#include "http.h"
#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/codec.h"
#include "sealpod/json.h"
#include "sealpod/log.h"

#define MAX_HOPS 8

struct registry {
	sp_image_store s;
	bool has_base;
	struct img_url base;
	bool insecure;
	char *user, *pass, *ca_file, *resolv_conf;
	char *auth_header; /* "Authorization: ..." for base's host */
	char *auth_host;
};

static bool insecure_ok(const struct registry *g, const struct img_url *u)
{
	if (u->tls)
		return true;
	return g->insecure && (!strcmp(u->host, "127.0.0.1") || !strcmp(u->host, "::1") ||
			       !strcmp(u->host, "10.0.2.2"));
}

static void url_encode(sp_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~')
			sp_buf_put_u8(b, c);
		else
			sp_buf_printf(b, "%%%02X", c);
	}
}

/* Parses `Scheme k="v", k=v` into scheme and up to three parameters. */
static int parse_challenge(const char *h, char **scheme, char **realm, char **service,
			   char **scope, sp_err **err)
{
	size_t sl = strcspn(h, " ");
	*scheme = sp_xstrndup(h, sl);
	const char *p = h + sl;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		size_t kl = strcspn(p, "=");
		if (!p[kl])
			return sp_error(err, SP_ERR_PROTOCOL, "registry: malformed WWW-Authenticate");
		_cleanup_free_ char *k = sp_xstrndup(p, kl);
		p += kl + 1;
		sp_buf v = SP_BUF_INIT;
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				sp_buf_put_u8(&v, (uint8_t)*p);
			}
			if (*p != '"') {
				sp_buf_free(&v);
				return sp_error(err, SP_ERR_PROTOCOL, "registry: unterminated quote in WWW-Authenticate");
			}
			p++;
		} else {
			size_t vl = strcspn(p, ",");
			sp_buf_put(&v, p, vl);
			p += vl;
		}
		sp_buf_terminate(&v);
		char **dst = !strcasecmp(k, "realm") ? realm : !strcasecmp(k, "service") ? service
			   : !strcasecmp(k, "scope") ? scope : NULL;
		if (dst) {
			free(*dst);
			*dst = (char *)sp_buf_steal(&v, NULL);
		} else {
			sp_buf_free(&v);
		}
	}
	return 0;
}

static char *basic_header(const struct registry *g)
{
	_cleanup_free_ char *up = sp_xasprintf("%s:%s", g->user, g->pass ? g->pass : "");
	_cleanup_free_ char *b = sp_base64_encode(up, strlen(up), SP_B64_STD);
	return sp_xasprintf("Authorization: Basic %s", b);
}

static int get_token(struct registry *g, const char *challenge, const char *repo,
		     sp_err **err)
{
	_cleanup_free_ char *scheme = NULL, *realm = NULL, *service = NULL, *scope = NULL;
	int r = parse_challenge(challenge, &scheme, &realm, &service, &scope, err);
	if (r < 0)
		return r;
	if (!strcasecmp(scheme, "Basic")) {
		if (!g->user)
			return sp_error(err, SP_ERR_DENIED,
					"registry wants credentials (basic auth); give a username and password");
		free(g->auth_header);
		g->auth_header = basic_header(g);
		return 0;
	}
	if (strcasecmp(scheme, "Bearer") || !realm)
		return sp_error(err, SP_ERR_UNSUPPORTED, "registry: auth scheme `%.40s` is not supported",
				scheme);
	sp_buf q = SP_BUF_INIT;
	sp_buf_printf(&q, "%s%s", realm, strchr(realm, '?') ? "&" : "?");
	if (service) {
		sp_buf_printf(&q, "service=");
		url_encode(&q, service);
		sp_buf_printf(&q, "&");
	}
	sp_buf_printf(&q, "scope=");
	if (scope) {
		url_encode(&q, scope);
	} else {
		_cleanup_free_ char *sc = sp_xasprintf("repository:%s:pull", repo);
		url_encode(&q, sc);
	}
	sp_buf_terminate(&q);
	struct img_url tu;
	r = img_url_parse(&tu, (char *)q.data, err);
	sp_buf_free(&q);
	if (r < 0)
		return sp_error_wrap(err, "registry token endpoint");
	if (!insecure_ok(g, &tu)) {
		img_url_clear(&tu);
		return sp_error(err, SP_ERR_DENIED,
				"registry token endpoint is plain http; refused (https or an explicitly allowed local address)");
	}
	_cleanup_free_ char *basic = g->user ? basic_header(g) : NULL;
	const char *hdrs[] = {basic, NULL};
	struct img_http_resp resp;
	img_stream *body = NULL;
	r = img_http_get(&tu, hdrs, g->ca_file, g->resolv_conf, &resp, &body, err);
	img_url_clear(&tu);
	if (r < 0)
		return sp_error_wrap(err, "registry token endpoint");
	_cleanup_stream_ img_stream *b = body;
	int status = resp.status;
	img_http_resp_clear(&resp);
	if (status != 200)
		return sp_error(err, SP_ERR_DENIED, "registry token endpoint answered %d; check the credentials",
				status);
	sp_buf data = SP_BUF_INIT;
	uint8_t buf[4096];
	ssize_t n;
	while ((n = b->read(b, buf, sizeof(buf), err)) > 0) {
		if (data.len + (size_t)n > (1u << 20)) {
			sp_buf_free(&data);
			return sp_error(err, SP_ERR_LIMIT, "registry token response too large");
		}
		sp_buf_put(&data, buf, (size_t)n);
	}
	if (n < 0) {
		sp_buf_free(&data);
		return (int)n;
	}
	_cleanup_json_ json_t *j = NULL;
	r = sp_json_parse(&j, data.data, data.len, "token response", err);
	sp_buf_free(&data);
	if (r < 0)
		return r;
	const char *tok = json_string_value(json_object_get(j, "token"));
	if (!tok)
		tok = json_string_value(json_object_get(j, "access_token"));
	if (!tok || !*tok || strpbrk(tok, "\r\n"))
		return sp_error(err, SP_ERR_PROTOCOL, "registry token response has no usable token");
	free(g->auth_header);
	g->auth_header = sp_xasprintf("Authorization: Bearer %s", tok);
	return 0;
}

/* GETs path on the registry of ref, following auth and redirects. */
static int request(struct registry *g, const sp_image_ref *ref, const char *path,
		   const char *accept, struct img_http_resp *resp, img_stream **body,
		   sp_err **err)
{
	struct img_url u;
	int r;
	if (g->has_base) {
		_cleanup_free_ char *full = sp_xasprintf("%s://%s%s%s:%s%s",
							 g->base.tls ? "https" : "http",
							 strchr(g->base.host, ':') ? "[" : "",
							 g->base.host, strchr(g->base.host, ':') ? "]" : "",
							 g->base.port, path);
		r = img_url_parse(&u, full, err);
	} else {
		const char *host = strcmp(ref->registry, "docker.io") ? ref->registry
								     : "registry-1.docker.io";
		_cleanup_free_ char *full = sp_xasprintf("https://%s%s", host, path);
		r = img_url_parse(&u, full, err);
	}
	if (r < 0)
		return r;
	_cleanup_free_ char *origin = sp_xasprintf("%s:%s", u.host, u.port);
	bool tried_auth = false;
	for (int hop = 0; hop < MAX_HOPS; hop++) {
		if (!insecure_ok(g, &u)) {
			r = sp_error(err, SP_ERR_DENIED,
				     "registry %s: plain http is refused (use https, or allow insecure http for 127.0.0.1 / 10.0.2.2)",
				     u.host);
			break;
		}
		_cleanup_free_ char *here = sp_xasprintf("%s:%s", u.host, u.port);
		/* Credentials go only to the registry itself, never to the
		 * storage a redirect points at. */
		const char *auth = g->auth_header && !strcmp(here, origin) ? g->auth_header : NULL;
		_cleanup_free_ char *acc = accept ? sp_xasprintf("Accept: %s", accept) : NULL;
		const char *hdrs[3] = {0};
		size_t k = 0;
		if (acc)
			hdrs[k++] = acc;
		if (auth)
			hdrs[k++] = auth;
		img_stream *b = NULL;
		r = img_http_get(&u, hdrs, g->ca_file, g->resolv_conf, resp, &b, err);
		if (r < 0)
			break;
		if (resp->status == 401 && !tried_auth && resp->www_authenticate &&
		    !strcmp(here, origin)) {
			tried_auth = true;
			_cleanup_free_ char *ch = sp_xstrdup(resp->www_authenticate);
			img_stream_close(b);
			img_http_resp_clear(resp);
			if ((r = get_token(g, ch, ref->repository, err)) < 0)
				break;
			hop--;
			continue;
		}
		if (resp->status >= 300 && resp->status < 400 && resp->status != 304 &&
		    resp->location) {
			struct img_url next;
			r = img_url_resolve(&next, &u, resp->location, err);
			img_stream_close(b);
			img_http_resp_clear(resp);
			if (r < 0)
				break;
			img_url_clear(&u);
			u = next;
			continue;
		}
		if (resp->status == 200) {
			*body = b;
			img_url_clear(&u);
			return 0;
		}
		int st = resp->status;
		img_stream_close(b);
		img_http_resp_clear(resp);
		r = sp_error(err, st == 404 ? SP_ERR_NOT_FOUND : st == 401 || st == 403 ? SP_ERR_DENIED
											: SP_ERR_PROTOCOL,
			     "registry %s answered %d for %s%s", u.host, st, path,
			     st == 401 || st == 403 ? " (credentials missing or refused)" : "");
		break;
	}
	if (r == 0)
		r = sp_error(err, SP_ERR_PROTOCOL, "registry: too many redirects");
	img_url_clear(&u);
	return r;
}

static int reg_get_manifest(sp_image_store *s, const sp_image_ref *ref, uint8_t **data,
			    size_t *len, char **media_type, sp_err **err)
{
	struct registry *g = (struct registry *)s;
	_cleanup_free_ char *path = sp_xasprintf("/v2/%s/manifests/%s", ref->repository,
						 ref->digest ? ref->digest : ref->tag);
	struct img_http_resp resp;
	img_stream *body = NULL;
	int r = request(g, ref, path,
			IMG_MT_OCI_MANIFEST ", " IMG_MT_OCI_INDEX ", " IMG_MT_DOCKER_MANIFEST
			", " IMG_MT_DOCKER_LIST,
			&resp, &body, err);
	if (r < 0)
		return r;
	_cleanup_stream_ img_stream *b = body;
	if (resp.content_length > (int64_t)IMG_MAX_JSON) {
		img_http_resp_clear(&resp);
		return sp_error(err, SP_ERR_LIMIT, "registry: manifest larger than %u bytes", IMG_MAX_JSON);
	}
	sp_buf buf = SP_BUF_INIT;
	uint8_t chunk[16384];
	ssize_t n;
	while ((n = b->read(b, chunk, sizeof(chunk), err)) > 0) {
		if (buf.len + (size_t)n > IMG_MAX_JSON) {
			n = sp_error(err, SP_ERR_LIMIT, "registry: manifest larger than %u bytes",
				     IMG_MAX_JSON);
			break;
		}
		sp_buf_put(&buf, chunk, (size_t)n);
	}
	if (n < 0) {
		sp_buf_free(&buf);
		img_http_resp_clear(&resp);
		return (int)n;
	}
	sp_buf_terminate(&buf);
	*media_type = resp.content_type ? sp_xstrndup(resp.content_type,
						      strcspn(resp.content_type, "; ")) : NULL;
	img_http_resp_clear(&resp);
	*data = sp_buf_steal(&buf, len);
	return 0;
}

static int reg_open_blob(sp_image_store *s, const sp_image_ref *ref, const char *digest,
			 int64_t size, img_stream **out, sp_err **err)
{
	struct registry *g = (struct registry *)s;
	_cleanup_free_ char *path = sp_xasprintf("/v2/%s/blobs/%s", ref->repository, digest);
	struct img_http_resp resp;
	int r = request(g, ref, path, NULL, &resp, out, err);
	if (r == 0)
		img_http_resp_clear(&resp);
	return r;
}

static void reg_close(sp_image_store *s)
{
	struct registry *g = (struct registry *)s;
	img_url_clear(&g->base);
	free(g->user);
	free(g->pass);
	free(g->ca_file);
	free(g->resolv_conf);
	free(g->auth_header);
	free(g->auth_host);
	free(g->s.spec);
	free(g);
}

static const struct img_store_ops registry_ops = {
	.get_manifest = reg_get_manifest,
	.open_blob = reg_open_blob,
	.close = reg_close,
};

int img_registry_open(sp_image_store **out, const char *url,
		      const struct sp_image_store_opts *o, sp_err **err)
{
	struct registry *g = sp_xzalloc(sizeof(*g));
	g->s.ops = &registry_ops;
	g->s.spec = sp_xasprintf("registry:%s", url);
	if (o) {
		g->insecure = o->insecure_http;
		g->user = o->username ? sp_xstrdup(o->username) : NULL;
		g->pass = o->password ? sp_xstrdup(o->password) : NULL;
		g->ca_file = o->ca_file ? sp_xstrdup(o->ca_file) : NULL;
		g->resolv_conf = o->resolv_conf ? sp_xstrdup(o->resolv_conf) : NULL;
	}
	if (*url) {
		int r = img_url_parse(&g->base, url, err);
		if (r < 0) {
			reg_close(&g->s);
			return r;
		}
		g->has_base = true;
		size_t pl = strlen(g->base.path);
		if (strcmp(g->base.path, "/") && !(pl == 0)) {
			/* Paths under the host are not part of the API. */
			reg_close(&g->s);
			return sp_error(err, SP_ERR_INVALID,
					"registry URL `%s`: give only scheme://host[:port]", url);
		}
		if (!insecure_ok(g, &g->base)) {
			reg_close(&g->s);
			return sp_error(err, SP_ERR_DENIED,
					"registry URL `%s`: plain http is allowed only with insecure_http and only to 127.0.0.1, ::1 or 10.0.2.2",
					url);
		}
	}
	*out = &g->s;
	return 0;
}
