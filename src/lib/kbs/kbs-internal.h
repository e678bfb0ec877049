/* SPDX-License-Identifier: Apache-2.0 */
/* Internal to the kbs module. */
#ifndef SEALPOD_KBS_INTERNAL_H
#define SEALPOD_KBS_INTERNAL_H

#include "sealpod/kbs.h"

/* A small HTTP/1.1 client for the KBS client: one request per connection
 * (Connection: close), body read whole up to KBS_HTTP_MAX. Guest-safe:
 * OpenSSL only, no libcurl. */
#define KBS_HTTP_MAX (8u << 20)

struct kbs_url {
	bool tls;
	char *host; /* without brackets */
	char *port;
};
int kbs_url_parse(struct kbs_url *u, const char *url, sp_err **err);
void kbs_url_clear(struct kbs_url *u);

struct kbs_http_resp {
	int status;
	char *session;  /* the kbs-session-id cookie value, if set */
	uint8_t *body;  /* NUL-terminated */
	size_t body_len;
};
void kbs_http_resp_clear(struct kbs_http_resp *r);
int kbs_http_request(const struct kbs_url *u, const char *method, const char *path,
		     const char *const *headers, const void *body, size_t body_len,
		     const char *ca_file, int timeout_s, struct kbs_http_resp *resp,
		     sp_err **err);
/* Parses a response head (up to the blank line); for the fuzzer too. */
int kbs_http_parse_head(struct kbs_http_resp *r, const char *head, size_t len,
			int64_t *content_length, bool *chunked, sp_err **err);

#endif
