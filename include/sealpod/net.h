/* SPDX-License-Identifier: Apache-2.0 */
/* A TCP connection, with TLS when asked: what the registry client and the
 * key broker's client share. */
#ifndef SEALPOD_NET_H
#define SEALPOD_NET_H

#include <openssl/ssl.h>

#include "sealpod/common.h"
#include "sealpod/err.h"

typedef struct sp_net_conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl; /* NULL without TLS */
} sp_net_conn;

#define SP_NET_CONN_INIT {-1, NULL, NULL}

/* Connects to host:port with send and receive timeouts of timeout_s. With
 * tls, verifies the peer against ca_file (NULL = the system store): an
 * address against the certificate's IP SANs (and no SNI, which names only
 * hosts), a name against its DNS SANs. `what` names the peer in errors
 * ("registry", "KBS"). On failure *c is closed and reset. */
SP_PUBLIC int sp_net_dial(sp_net_conn *c, const char *host, const char *port, bool tls,
			  const char *ca_file, int timeout_s, const char *what, sp_err **err);
/* The same, resolving host with the library's stub resolver through the
 * nameservers of resolv_conf (a path) instead of the C library's
 * (resolv_conf NULL: getaddrinfo). */
SP_PUBLIC int sp_net_dial_resolv(sp_net_conn *c, const char *host, const char *port,
				 bool tls, const char *ca_file, const char *resolv_conf,
				 int timeout_s, const char *what, sp_err **err);
SP_PUBLIC void sp_net_close(sp_net_conn *c);

#endif
