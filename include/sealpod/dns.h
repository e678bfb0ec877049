/* SPDX-License-Identifier: Apache-2.0 */
/* A small stub resolver: A and AAAA queries over UDP to the nameservers
 * of a resolv.conf. Used where the C library's resolver is not (the
 * guest, which has no NSS and whose resolv.conf is the pod's). Answers
 * are untrusted hints: what is reached by them is checked by TLS and by
 * digests, never by the name. docs/images.md has the design. */
#ifndef SEALPOD_DNS_H
#define SEALPOD_DNS_H

#include "sealpod/common.h"
#include "sealpod/err.h"

#define SP_DNS_MAX_SERVERS 3
#define SP_DNS_MAX_ADDRS 16

typedef struct sp_dns_addr {
	int family;        /* AF_INET or AF_INET6 */
	uint8_t addr[16];  /* 4 or 16 bytes, network order */
} sp_dns_addr;

typedef struct sp_dns_conf {
	size_t nservers;
	sp_dns_addr servers[SP_DNS_MAX_SERVERS];
	unsigned timeout_s; /* per server and attempt: options timeout:N (1-30, default 2) */
	unsigned attempts;  /* options attempts:N (1-5, default 2) */
	uint16_t port;      /* 53; tests may change it */
} sp_dns_conf;

/* Parses resolv.conf text: `nameserver ADDR` (IPv4 or IPv6 literal; the
 * first three), `options timeout:N attempts:N`; comments (# ;) and other
 * lines (search, domain: names are queried as given) are ignored. No
 * nameserver is an error. */
SP_PUBLIC int sp_dns_conf_parse(sp_dns_conf *out, const char *text, size_t len,
				sp_err **err);
SP_PUBLIC int sp_dns_conf_load(sp_dns_conf *out, const char *path, sp_err **err);

enum { SP_DNS_A = 1, SP_DNS_CNAME = 5, SP_DNS_AAAA = 28 };

/* Builds a query (recursion desired) for name and type into buf; returns
 * its length, or a negative error for a name that is not a DNS name. */
SP_PUBLIC int sp_dns_query_build(uint8_t *buf, size_t cap, uint16_t id,
				 const char *name, uint16_t qtype, sp_err **err);

/* Parses a response to the query (id, name, qtype): the addresses of
 * type qtype owned by name or by a name it is a CNAME of (a chain of at
 * most 8), at most max (*n of them). NXDOMAIN is SP_ERR_NOT_FOUND; a
 * truncated answer, a server failure or a malformed message are errors.
 * Bounded: compression pointers point backwards, names are at most 255
 * bytes, at most 64 records are looked at. */
SP_PUBLIC int sp_dns_response_parse(const uint8_t *msg, size_t len, uint16_t id,
				    const char *name, uint16_t qtype, sp_dns_addr *out,
				    size_t max, size_t *n, sp_err **err);

/* Resolves name (A and AAAA; IPv4 first) through conf's nameservers.
 * An IP literal is returned as it is. */
SP_PUBLIC int sp_dns_resolve(const sp_dns_conf *conf, const char *name, sp_dns_addr *out,
			     size_t max, size_t *n, sp_err **err);

#endif
