/* SPDX-License-Identifier: Apache-2.0 */
/* A stub resolver for A and AAAA over UDP (RFC 1035). Every byte of an
 * answer is outside input: the parser is bounded (names ≤ 255 bytes,
 * labels ≤ 63, compression pointers only backwards and at most 64 of
 * them per name, at most 64 records read) and fuzzed (fuzz/dns.c). The
 * answer is a hint; nothing here decides trust. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "sealpod/dns.h"
#include "sealpod/file.h"

#define HDR 12
#define MAX_NAME 255
#define MAX_RECORDS 64
#define MAX_CHAIN 8
#define MAX_MSG 1232 /* what we ask for; a UDP answer is at most 512 without EDNS */

static bool parse_ip(const char *s, sp_dns_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, a->addr) == 1) {
		a->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, a->addr) == 1) {
		a->family = AF_INET6;
		return true;
	}
	return false;
}

int sp_dns_conf_parse(sp_dns_conf *out, const char *text, size_t len, sp_err **err)
{
	memset(out, 0, sizeof(*out));
	out->timeout_s = 2;
	out->attempts = 2;
	out->port = 53;
	size_t i = 0;
	while (i < len) {
		size_t e = i;
		while (e < len && text[e] != '\n')
			e++;
		char line[512];
		size_t ll = e - i < sizeof(line) - 1 ? e - i : sizeof(line) - 1;
		memcpy(line, text + i, ll);
		line[ll] = 0;
		i = e + 1;
		char *save = NULL;
		char *kw = strtok_r(line, " \t\r", &save);
		if (!kw || kw[0] == '#' || kw[0] == ';')
			continue;
		if (!strcmp(kw, "nameserver")) {
			char *v = strtok_r(NULL, " \t\r", &save);
			sp_dns_addr a;
			if (!v || !parse_ip(v, &a))
				return sp_error(err, SP_ERR_PARSE,
						"resolv.conf: nameserver `%.64s` is not an IP address",
						v ? v : "");
			if (out->nservers < SP_DNS_MAX_SERVERS)
				out->servers[out->nservers++] = a;
		} else if (!strcmp(kw, "options")) {
			char *o;
			while ((o = strtok_r(NULL, " \t\r", &save))) {
				unsigned v;
				char tail;
				if (sscanf(o, "timeout:%u%c", &v, &tail) == 1)
					out->timeout_s = v < 1 ? 1 : v > 30 ? 30 : v;
				else if (sscanf(o, "attempts:%u%c", &v, &tail) == 1)
					out->attempts = v < 1 ? 1 : v > 5 ? 5 : v;
			}
		}
	}
	if (!out->nservers)
		return sp_error(err, SP_ERR_NOT_FOUND, "resolv.conf names no nameserver");
	return 0;
}

int sp_dns_conf_load(sp_dns_conf *out, const char *path, sp_err **err)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	if (sp_read_file(&data, &len, path, 64 * 1024, err) < 0)
		return (*err)->code;
	if (sp_dns_conf_parse(out, (const char *)data, len, err) < 0)
		return sp_error_wrap(err, "%s", path);
	return 0;
}

int sp_dns_query_build(uint8_t *buf, size_t cap, uint16_t id, const char *name,
		       uint16_t qtype, sp_err **err)
{
	size_t nl = strlen(name);
	if (nl && name[nl - 1] == '.')
		nl--;
	if (nl == 0 || nl > 253 || cap < HDR + nl + 2 + 4)
		return sp_error(err, SP_ERR_INVALID, "`%.64s` is not a DNS name", name);
	memset(buf, 0, HDR);
	buf[0] = (uint8_t)(id >> 8);
	buf[1] = (uint8_t)id;
	buf[2] = 0x01; /* RD */
	buf[5] = 1;    /* QDCOUNT */
	size_t o = HDR;
	size_t start = 0;
	for (size_t k = 0; k <= nl; k++) {
		if (k == nl || name[k] == '.') {
			size_t l = k - start;
			if (l == 0 || l > 63)
				return sp_error(err, SP_ERR_INVALID, "`%.64s` is not a DNS name", name);
			buf[o++] = (uint8_t)l;
			for (size_t j = start; j < k; j++) {
				unsigned char c = (unsigned char)name[j];
				if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				      (c >= '0' && c <= '9') || c == '-' || c == '_'))
					return sp_error(err, SP_ERR_INVALID,
							"`%.64s` is not a DNS name", name);
				buf[o++] = c;
			}
			start = k + 1;
		}
	}
	buf[o++] = 0;
	buf[o++] = (uint8_t)(qtype >> 8);
	buf[o++] = (uint8_t)qtype;
	buf[o++] = 0;
	buf[o++] = 1; /* IN */
	return (int)o;
}

/* Reads the name at *off into out (lowercase, dot-separated, no final
 * dot) and moves *off past it. */
static bool read_name(const uint8_t *m, size_t len, size_t *off, char out[MAX_NAME + 1])
{
	size_t p = *off, o = 0, end = 0;
	bool jumped = false;
	int jumps = 0;
	for (;;) {
		if (p >= len)
			return false;
		uint8_t l = m[p];
		if ((l & 0xC0) == 0xC0) {
			if (p + 1 >= len || ++jumps > 64)
				return false;
			size_t target = ((size_t)(l & 0x3F) << 8) | m[p + 1];
			if (target >= p) /* only backwards: no loops */
				return false;
			if (!jumped)
				end = p + 2;
			jumped = true;
			p = target;
			continue;
		}
		if (l & 0xC0)
			return false; /* 0x40, 0x80: reserved label types */
		if (l == 0) {
			if (!jumped)
				end = p + 1;
			break;
		}
		if (p + 1 + l > len || o + l + 1 > MAX_NAME)
			return false;
		if (o)
			out[o++] = '.';
		for (size_t k = 0; k < l; k++) {
			unsigned char c = m[p + 1 + k];
			if (c == '.' || c == 0)
				return false;
			out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		p += 1 + (size_t)l;
	}
	out[o] = 0;
	*off = end;
	return true;
}

static uint16_t u16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static void lower_name(char *dst, const char *src)
{
	size_t n = strlen(src);
	if (n > MAX_NAME)
		n = MAX_NAME;
	if (n && src[n - 1] == '.')
		n--;
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
	dst[n] = 0;
}

int sp_dns_response_parse(const uint8_t *m, size_t len, uint16_t id, const char *name,
			  uint16_t qtype, sp_dns_addr *out, size_t max, size_t *n,
			  sp_err **err)
{
	*n = 0;
	char want[MAX_NAME + 1];
	lower_name(want, name);
	if (len < HDR)
		return sp_error(err, SP_ERR_PROTOCOL, "DNS: answer shorter than its header");
	if (u16(m) != id || !(m[2] & 0x80))
		return sp_error(err, SP_ERR_PROTOCOL, "DNS: not the answer to our query");
	if (m[2] & 0x02)
		return sp_error(err, SP_ERR_PROTOCOL,
				"DNS: answer for `%s` truncated (TCP is not supported)", want);
	unsigned rcode = m[3] & 0x0F;
	if (rcode == 3)
		return sp_error(err, SP_ERR_NOT_FOUND, "DNS: no such name `%s` (NXDOMAIN)", want);
	if (rcode)
		return sp_error(err, SP_ERR_PROTOCOL, "DNS: the server answered rcode %u for `%s`%s",
				rcode, want, rcode == 2 ? " (server failure)" : rcode == 5 ? " (refused)" : "");
	if (u16(m + 4) != 1)
		return sp_error(err, SP_ERR_PROTOCOL, "DNS: the answer has %u questions, not 1",
				u16(m + 4));
	size_t off = HDR;
	char nm[MAX_NAME + 1];
	if (!read_name(m, len, &off, nm) || off + 4 > len)
		return sp_error(err, SP_ERR_PARSE, "DNS: malformed question");
	if (strcmp(nm, want) || u16(m + off) != qtype || u16(m + off + 2) != 1)
		return sp_error(err, SP_ERR_PROTOCOL, "DNS: the answer is for another question");
	off += 4;
	size_t records = u16(m + 6);
	if (records > MAX_RECORDS)
		records = MAX_RECORDS;
	/* Owners we accept: the name and its CNAME chain. */
	char owners[MAX_CHAIN + 1][MAX_NAME + 1];
	size_t nowners = 1;
	strcpy(owners[0], want);
	struct rec {
		size_t owner_off, rdata;
		uint16_t type, rdlen;
	} recs[MAX_RECORDS];
	size_t nrecs = 0;
	for (size_t i = 0; i < records; i++) {
		size_t owner = off;
		if (!read_name(m, len, &off, nm) || off + 10 > len)
			return sp_error(err, SP_ERR_PARSE, "DNS: malformed answer record %zu", i);
		uint16_t type = u16(m + off), cls = u16(m + off + 2), rdlen = u16(m + off + 8);
		off += 10;
		if (off + rdlen > len)
			return sp_error(err, SP_ERR_PARSE, "DNS: answer record %zu overruns the message", i);
		if (cls == 1)
			recs[nrecs++] = (struct rec){owner, off, type, rdlen};
		off += rdlen;
	}
	/* Follow CNAMEs (in any order), at most MAX_CHAIN of them. */
	for (bool grew = true; grew && nowners <= MAX_CHAIN;) {
		grew = false;
		for (size_t i = 0; i < nrecs && nowners <= MAX_CHAIN; i++) {
			if (recs[i].type != SP_DNS_CNAME)
				continue;
			size_t o = recs[i].owner_off;
			if (!read_name(m, len, &o, nm))
				return sp_error(err, SP_ERR_PARSE, "DNS: malformed CNAME owner");
			if (strcmp(nm, owners[nowners - 1]))
				continue;
			o = recs[i].rdata;
			char target[MAX_NAME + 1];
			if (!read_name(m, recs[i].rdata + recs[i].rdlen, &o, target))
				return sp_error(err, SP_ERR_PARSE, "DNS: malformed CNAME target");
			bool seen = false;
			for (size_t k = 0; k < nowners; k++)
				seen = seen || !strcmp(owners[k], target);
			if (seen)
				return sp_error(err, SP_ERR_PROTOCOL, "DNS: CNAME loop at `%s`", target);
			if (nowners == MAX_CHAIN + 1)
				break;
			strcpy(owners[nowners++], target);
			grew = true;
		}
	}
	size_t alen = qtype == SP_DNS_A ? 4 : 16;
	for (size_t i = 0; i < nrecs && *n < max; i++) {
		if (recs[i].type != qtype || recs[i].rdlen != alen)
			continue;
		size_t o = recs[i].owner_off;
		if (!read_name(m, len, &o, nm))
			return sp_error(err, SP_ERR_PARSE, "DNS: malformed owner");
		bool ours = false;
		for (size_t k = 0; k < nowners; k++)
			ours = ours || !strcmp(owners[k], nm);
		if (!ours)
			continue;
		sp_dns_addr *a = &out[(*n)++];
		memset(a, 0, sizeof(*a));
		a->family = qtype == SP_DNS_A ? AF_INET : AF_INET6;
		memcpy(a->addr, m + recs[i].rdata, alen);
	}
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One server, one attempt: A and AAAA on one connected UDP socket. 1 if
 * it answered both (or NXDOMAIN), 0 if it timed out, <0 on an error. */
static int ask(const sp_dns_conf *c, const sp_dns_addr *srv, const char *name,
	       sp_dns_addr *out, size_t max, size_t *n, sp_err **err)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	if (srv->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(c->port);
		memcpy(&s4->sin_addr, srv->addr, 4);
		sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(c->port);
		memcpy(&s6->sin6_addr, srv->addr, 16);
		sl = sizeof(*s6);
	}
	_cleanup_close_ int fd = socket(srv->family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return sp_error_sys(err, errno, "DNS: socket");
	/* connect() makes the kernel drop datagrams from anyone else. */
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0)
		return sp_error_sys(err, errno, "DNS: connect to the nameserver");
	uint16_t ids[2];
	if (getrandom(ids, sizeof(ids), 0) != sizeof(ids))
		return sp_error_sys(err, errno, "DNS: getrandom");
	static const uint16_t types[2] = {SP_DNS_A, SP_DNS_AAAA};
	bool done[2] = {false, false};
	sp_dns_addr got[2][SP_DNS_MAX_ADDRS];
	size_t ngot[2] = {0, 0};
	for (int q = 0; q < 2; q++) {
		uint8_t buf[300];
		int ql = sp_dns_query_build(buf, sizeof(buf), ids[q], name, types[q], err);
		if (ql < 0)
			return ql;
		if (send(fd, buf, (size_t)ql, 0) != ql) {
			if (errno == ECONNREFUSED) /* the ICMP of the first query */
				return 0;
			return sp_error_sys(err, errno, "DNS: send");
		}
	}
	int notfound = 0;
	uint64_t deadline = now_ms() + (uint64_t)c->timeout_s * 1000;
	while (!(done[0] && done[1])) {
		uint64_t t = now_ms();
		if (t >= deadline)
			break;
		struct pollfd pfd = {fd, POLLIN, 0};
		int pr = poll(&pfd, 1, (int)(deadline - t));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			break;
		uint8_t m[MAX_MSG];
		ssize_t rl = recv(fd, m, sizeof(m), 0);
		if (rl < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			if (errno == ECONNREFUSED)
				return 0; /* nobody there: the next server */
			return sp_error_sys(err, errno, "DNS: receive");
		}
		for (int q = 0; q < 2; q++) {
			if (done[q] || rl < 2 || u16(m) != ids[q])
				continue;
			_cleanup_err_ sp_err *e = NULL;
			int r = sp_dns_response_parse(m, (size_t)rl, ids[q], name, types[q], got[q],
						      SP_DNS_MAX_ADDRS, &ngot[q], &e);
			if (r == SP_ERR_NOT_FOUND) {
				notfound++;
				done[q] = true;
			} else if (r < 0) {
				/* A bad answer from the server we asked: give up on
				 * it (another may do better) and say why at the end. */
				return sp_error(err, r, "%s", sp_err_msg(e));
			} else {
				done[q] = true;
			}
		}
	}
	if (!done[0] && !done[1])
		return 0;
	if (notfound && !ngot[0] && !ngot[1])
		return sp_error(err, SP_ERR_NOT_FOUND, "DNS: no such name `%s`", name);
	for (int q = 0; q < 2; q++)
		for (size_t i = 0; i < ngot[q] && *n < max; i++)
			out[(*n)++] = got[q][i];
	return 1;
}

int sp_dns_resolve(const sp_dns_conf *c, const char *name, sp_dns_addr *out, size_t max,
		   size_t *n, sp_err **err)
{
	*n = 0;
	if (max && parse_ip(name, &out[0])) {
		*n = 1;
		return 0;
	}
	_cleanup_err_ sp_err *last = NULL;
	for (unsigned a = 0; a < c->attempts; a++) {
		for (size_t s = 0; s < c->nservers; s++) {
			sp_err_clear(&last);
			int r = ask(c, &c->servers[s], name, out, max, n, &last);
			if (r == SP_ERR_NOT_FOUND)
				return sp_error(err, r, "%s", sp_err_msg(last));
			if (r > 0) {
				if (*n)
					return 0;
				return sp_error(err, SP_ERR_NOT_FOUND,
						"DNS: `%s` has no A or AAAA record", name);
			}
		}
	}
	char srv[INET6_ADDRSTRLEN] = "?";
	inet_ntop(c->servers[0].family, c->servers[0].addr, srv, sizeof(srv));
	if (last)
		return sp_error(err, last->code, "%s (nameserver %s)", sp_err_msg(last), srv);
	return sp_error(err, SP_ERR_TIMEOUT,
			"DNS: no answer for `%s` from the nameservers of resolv.conf (%s%s) in %u x %u s",
			name, srv, c->nservers > 1 ? ", ..." : "", c->attempts, c->timeout_s);
}
