/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal HTTP/1.1 client for registries: GET only, one request per
 * connection, TLS through OpenSSL. docs/images.md says why not libcurl. */
#ifndef SEALPOD_IMAGE_HTTP_H
#define SEALPOD_IMAGE_HTTP_H

#include "image-internal.h"

struct img_url {
	bool tls;
	char *host; /* without brackets */
	char *port;
	char *path; /* starts with '/', includes the query */
};
int img_url_parse(struct img_url *u, const char *url, sp_err **err);
void img_url_clear(struct img_url *u);
/* Resolves a Location header against base. */
int img_url_resolve(struct img_url *out, const struct img_url *base,
		    const char *loc, sp_err **err);

struct img_http_resp {
	int status;
	char *content_type;
	char *www_authenticate;
	char *location;
	int64_t content_length; /* -1 if none */
	bool chunked;
};
void img_http_resp_clear(struct img_http_resp *r);

/* Sends GET u with extra header lines ("Name: value", NULL-terminated)
 * and reads the response head. *body streams the body and owns the
 * connection. */
int img_http_get(const struct img_url *u, const char *const *headers,
		 const char *ca_file, const char *resolv_conf, struct img_http_resp *resp,
		 img_stream **body, sp_err **err);

/* Parses a response head (for fuzzing): data up to and including the
 * blank line. */
int img_http_parse_head(struct img_http_resp *resp, const char *data,
			size_t len, sp_err **err);

#endif
