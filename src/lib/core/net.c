/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "sealpod/dns.h"
#include "sealpod/net.h"

void sp_net_close(sp_net_conn *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	*c = (sp_net_conn)SP_NET_CONN_INIT;
}

static int connect_addr(sp_net_conn *c, const struct sockaddr *sa, socklen_t sl, int timeout_s)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	struct timeval tv = {timeout_s, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, sa, sl) == 0) {
		c->fd = fd;
		return 0;
	}
	int e = errno;
	close(fd);
	return e;
}

/* Through the library's stub resolver and a resolv.conf (the guest's
 * way: no NSS there, and the pod's resolv.conf). */
static int tcp_connect_resolv(sp_net_conn *c, const char *host, const char *port,
			      const char *resolv_conf, int timeout_s, const char *what,
			      sp_err **err)
{
	char *end;
	unsigned long pn = strtoul(port, &end, 10);
	if (!*port || *end || pn == 0 || pn > 65535)
		return sp_error(err, SP_ERR_INVALID, "%s port `%s`", what, port);
	sp_dns_conf conf;
	sp_dns_addr addrs[SP_DNS_MAX_ADDRS];
	size_t n = 0;
	if (sp_dns_conf_load(&conf, resolv_conf, err) < 0 ||
	    sp_dns_resolve(&conf, host, addrs, SP_DNS_MAX_ADDRS, &n, err) < 0)
		return sp_error_wrap(err, "%s host `%s`", what, host);
	int last = 0;
	for (size_t i = 0; i < n && c->fd < 0; i++) {
		struct sockaddr_storage ss = {0};
		socklen_t sl;
		if (addrs[i].family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			s4->sin_family = AF_INET;
			s4->sin_port = htons((uint16_t)pn);
			memcpy(&s4->sin_addr, addrs[i].addr, 4);
			sl = sizeof(*s4);
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)pn);
			memcpy(&s6->sin6_addr, addrs[i].addr, 16);
			sl = sizeof(*s6);
		}
		last = connect_addr(c, (struct sockaddr *)&ss, sl, timeout_s);
	}
	if (c->fd < 0)
		return sp_error_sys(err, last ? last : EHOSTUNREACH,
				    "connect to %s %s:%s (%zu address%s from DNS)", what, host, port, n,
				    n == 1 ? "" : "es");
	return 0;
}

static int tcp_connect(sp_net_conn *c, const char *host, const char *port, int timeout_s,
		       const char *what, sp_err **err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	int g = getaddrinfo(host, port, &hints, &ai);
	if (g)
		return sp_error(err, SP_ERR_NOT_FOUND, "%s host `%s`: %s", what, host,
				gai_strerror(g));
	int last = 0;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		struct timeval tv = {timeout_s, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			c->fd = fd;
			break;
		}
		last = errno;
		close(fd);
	}
	freeaddrinfo(ai);
	if (c->fd < 0)
		return sp_error_sys(err, last, "connect to %s %s:%s", what, host, port);
	return 0;
}

static int tls_connect(sp_net_conn *c, const char *host, const char *ca_file,
		       const char *what, sp_err **err)
{
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx)
		sp_oom();
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	if ((ca_file ? SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL)
		     : SSL_CTX_set_default_verify_paths(c->ctx)) != 1)
		return sp_error(err, SP_ERR_CERTIFICATE, "cannot load CA certificates%s%s",
				ca_file ? " from " : "", ca_file ? ca_file : "");
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl)
		sp_oom();
	SSL_set_fd(c->ssl, c->fd);
	/* An address (https://10.0.2.2:PORT, the host as a UVM sees it) is
	 * checked against the certificate's IP SANs and gets no SNI (RFC 6066
	 * names only host names); a name against its DNS SANs. */
	unsigned char ip[16];
	if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) != 1)
			return sp_error(err, SP_ERR_CERTIFICATE, "TLS to %s: cannot check the address",
					host);
	} else {
		SSL_set_tlsext_host_name(c->ssl, host);
		SSL_set1_host(c->ssl, host);
	}
	if (SSL_connect(c->ssl) != 1) {
		long v = SSL_get_verify_result(c->ssl);
		const char *why = ERR_reason_error_string(ERR_get_error());
		ERR_clear_error();
		if (v != X509_V_OK)
			return sp_error(err, SP_ERR_CERTIFICATE,
					"TLS to %s failed: the %s's certificate is refused: %s (checked against %s%s)",
					host, what, X509_verify_cert_error_string(v),
					ca_file ? "the CA file " : "the system CA store",
					ca_file ? ca_file : "");
		return sp_error(err, SP_ERR_CERTIFICATE, "TLS to %s failed: %s", host,
				why ? why : "handshake failed");
	}
	return 0;
}

int sp_net_dial(sp_net_conn *c, const char *host, const char *port, bool tls,
		const char *ca_file, int timeout_s, const char *what, sp_err **err)
{
	return sp_net_dial_resolv(c, host, port, tls, ca_file, NULL, timeout_s, what, err);
}

int sp_net_dial_resolv(sp_net_conn *c, const char *host, const char *port, bool tls,
		       const char *ca_file, const char *resolv_conf, int timeout_s,
		       const char *what, sp_err **err)
{
	*c = (sp_net_conn)SP_NET_CONN_INIT;
	int r = resolv_conf ? tcp_connect_resolv(c, host, port, resolv_conf, timeout_s, what, err)
			    : tcp_connect(c, host, port, timeout_s, what, err);
	if (r == 0 && tls)
		r = tls_connect(c, host, ca_file, what, err);
	if (r < 0)
		sp_net_close(c);
	return r;
}
