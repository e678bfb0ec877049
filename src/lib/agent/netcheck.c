/* SPDX-License-Identifier: Apache-2.0 */
/* Validation of the host's network description (UpdateInterface,
 * UpdateRoutes): untrusted input turned into plain structs that the netlink
 * side (network.c) applies. Pure functions, no system calls: the fuzzer
 * drives them directly (fuzz/agent_net.c). docs/network.md lists the rules. */
#include <arpa/inet.h>
#include <string.h>

#include "agent_internal.h"
#include "agent_net.h"

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n >= AGENT_NET_IFNAMSIZ || !strcmp(s, "lo") || !strcmp(s, ".") ||
	    !strcmp(s, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool agent_net_parse_mac(uint8_t mac[6], const char *s)
{
	if (!s || strlen(s) != 17)
		return false;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return false;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	static const uint8_t zero[6];
	/* A unicast address of a device: not multicast/broadcast, not zero. */
	return !(mac[0] & 1) && memcmp(mac, zero, 6) != 0;
}

/* An address a pod may hold or route through: not unspecified, loopback,
 * multicast or (v4) broadcast/"this network". */
static bool unicast_ok(int family, const uint8_t *a)
{
	if (family == AF_INET) {
		if (a[0] == 0 || a[0] == 127 || a[0] >= 224)
			return false;
		return true;
	}
	static const uint8_t zero[16];
	uint8_t lo[16] = {0};
	lo[15] = 1;
	if (!memcmp(a, zero, 16) || !memcmp(a, lo, 16) || a[0] == 0xff)
		return false;
	/* v4-mapped (::ffff:0:0/96) would smuggle v4 loopback in. */
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return memcmp(a, mapped, 12) != 0;
}

static int parse_ip(int *family, uint8_t out[16], const char *s)
{
	if (!s || !*s || strlen(s) > 64)
		return -1;
	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, out) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -1;
}

/* A decimal prefix length without sign, spaces or leading zeros. */
static int parse_prefix(unsigned *out, const char *s, unsigned max)
{
	if (!s || !*s || strlen(s) > 3 || (s[0] == '0' && s[1]))
		return -1;
	unsigned v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

static int want_family(int proto_family)
{
	return proto_family == SEALPOD__AGENT__V1__IPFAMILY__v6 ? AF_INET6
	       : proto_family == SEALPOD__AGENT__V1__IPFAMILY__v4 ? AF_INET : -1;
}

static bool host_bits_clear(int family, const uint8_t *a, unsigned len)
{
	unsigned bits = family == AF_INET ? 32 : 128;
	for (unsigned b = len; b < bits; b++)
		if (a[b / 8] & (0x80 >> (b % 8)))
			return false;
	return true;
}

/* True when prefix a/len and the loopback net overlap in a way that sends
 * loopback traffic elsewhere: a route to 127.0.0.0/8 or ::1 or into them.
 * A default route "contains" loopback too, but the local table wins over
 * the main table; only routes at least as specific as the loopback net
 * could matter if lo's routes were gone, so those are refused. */
static bool touches_loopback(int family, const uint8_t *a, unsigned len)
{
	if (family == AF_INET)
		return len >= 8 ? a[0] == 127 : false;
	uint8_t lo[16] = {0};
	lo[15] = 1;
	return len == 128 && !memcmp(a, lo, 16);
}

int agent_net_parse_iface(agent_net_iface *out, const Sealpod__Agent__V1__Interface *in,
			  sp_err **err)
{
	memset(out, 0, sizeof(*out));
	if (!in)
		return sp_error(err, SP_ERR_INVALID, "no interface given");
	if (!name_ok(in->name))
		return sp_error(err, SP_ERR_INVALID,
				"interface name `%.32s` is not usable (1-15 of [A-Za-z0-9_.-], not lo)",
				in->name ? in->name : "");
	snprintf(out->name, sizeof(out->name), "%s", in->name);
	if (!agent_net_parse_mac(out->mac, in->hwaddr))
		return sp_error(err, SP_ERR_INVALID,
				"interface %s: hwAddr `%.32s` is not a unicast MAC address "
				"(xx:xx:xx:xx:xx:xx) of a device the guest has",
				out->name, in->hwaddr ? in->hwaddr : "");
	if (in->raw_flags != 0 || (in->type && in->type[0]))
		return sp_error(err, SP_ERR_INVALID,
				"interface %s: type and raw_flags are not supported (give \"\" and 0)",
				out->name);
	if (in->mtu != 0 && (in->mtu < 68 || in->mtu > 65535))
		return sp_error(err, SP_ERR_INVALID,
				"interface %s: MTU %llu is outside 68..65535", out->name,
				(unsigned long long)in->mtu);
	out->mtu = (unsigned)in->mtu;
	if (in->n_ipaddresses > AGENT_NET_MAX_ADDRS)
		return sp_error(err, SP_ERR_LIMIT, "interface %s: %zu addresses; at most %d",
				out->name, in->n_ipaddresses, AGENT_NET_MAX_ADDRS);
	for (size_t i = 0; i < in->n_ipaddresses; i++) {
		const Sealpod__Agent__V1__IPAddress *ip = in->ipaddresses[i];
		agent_net_addr *a = &out->addrs[out->n_addrs];
		int fam = 0;
		if (!ip || parse_ip(&fam, a->addr, ip->address) < 0 || fam != want_family(ip->family))
			return sp_error(err, SP_ERR_INVALID,
					"interface %s: address %zu `%.64s` is not an IPv%c address",
					out->name, i, ip && ip->address ? ip->address : "",
					ip && ip->family == SEALPOD__AGENT__V1__IPFAMILY__v6 ? '6' : '4');
		a->family = fam;
		unsigned max = fam == AF_INET ? 32 : 128;
		if (parse_prefix(&a->prefix, ip->mask, max) < 0 || a->prefix == 0)
			return sp_error(err, SP_ERR_INVALID,
					"interface %s: address %.64s: prefix length `%.8s` is not 1..%u",
					out->name, ip->address, ip->mask ? ip->mask : "", max);
		if (!unicast_ok(fam, a->addr))
			return sp_error(err, SP_ERR_INVALID,
					"interface %s: address %.64s is not a unicast address a pod may hold "
					"(no loopback, unspecified, multicast or broadcast)",
					out->name, ip->address);
		if (fam == AF_INET6 && out->mtu && out->mtu < 1280)
			return sp_error(err, SP_ERR_INVALID,
					"interface %s: MTU %u is below IPv6's minimum 1280 for address %.64s",
					out->name, out->mtu, ip->address);
		for (size_t k = 0; k < out->n_addrs; k++)
			if (out->addrs[k].family == fam && !memcmp(out->addrs[k].addr, a->addr, 16))
				return sp_error(err, SP_ERR_INVALID,
						"interface %s: address %.64s is given twice", out->name,
						ip->address);
		out->n_addrs++;
	}
	return 0;
}

int agent_net_parse_route(agent_net_route *out, const Sealpod__Agent__V1__Route *in,
			  sp_err **err)
{
	memset(out, 0, sizeof(*out));
	if (!in)
		return sp_error(err, SP_ERR_INVALID, "empty route");
	int fam = want_family(in->family);
	if (fam < 0)
		return sp_error(err, SP_ERR_INVALID, "family %d is neither v4 nor v6", in->family);
	if (!name_ok(in->device))
		return sp_error(err, SP_ERR_INVALID,
				"device `%.32s` is not an interface name (the pod's interfaces only; "
				"never lo)", in->device ? in->device : "");
	snprintf(out->dev, sizeof(out->dev), "%s", in->device);
	const char *d = in->dest ? in->dest : "";
	if (*d && strcmp(d, "default")) {
		char buf[72];
		if (strlen(d) >= sizeof(buf))
			return sp_error(err, SP_ERR_INVALID, "destination is too long");
		snprintf(buf, sizeof(buf), "%s", d);
		char *slash = strchr(buf, '/');
		if (slash)
			*slash = 0;
		int dfam = 0;
		if (parse_ip(&dfam, out->dst, buf) < 0 || dfam != fam)
			return sp_error(err, SP_ERR_INVALID,
					"destination `%.64s` is not an IPv%c CIDR", d,
					fam == AF_INET ? '4' : '6');
		unsigned max = fam == AF_INET ? 32 : 128;
		if (!slash)
			out->dst_len = max;
		else if (parse_prefix(&out->dst_len, slash + 1, max) < 0)
			return sp_error(err, SP_ERR_INVALID,
					"destination `%.64s`: prefix length is not 0..%u", d, max);
		if (!host_bits_clear(fam, out->dst, out->dst_len))
			return sp_error(err, SP_ERR_INVALID,
					"destination `%.64s` has bits set beyond its prefix length", d);
		if (touches_loopback(fam, out->dst, out->dst_len))
			return sp_error(err, SP_ERR_INVALID,
					"destination `%.64s` is loopback: the pod's loopback carries "
					"its channel to the agent (127.0.0.1:8006) and stays local", d);
		if (out->dst_len > 0 && ((fam == AF_INET && out->dst[0] >= 224 && out->dst_len >= 4) ||
					 (fam == AF_INET6 && out->dst[0] == 0xff && out->dst_len >= 8)))
			return sp_error(err, SP_ERR_INVALID,
					"destination `%.64s` is multicast", d);
	}
	out->family = fam;
	if (in->gateway && in->gateway[0]) {
		int gfam = 0;
		if (parse_ip(&gfam, out->gw, in->gateway) < 0 || gfam != fam ||
		    !unicast_ok(gfam, out->gw))
			return sp_error(err, SP_ERR_INVALID,
					"gateway `%.64s` is not a unicast IPv%c address", in->gateway,
					fam == AF_INET ? '4' : '6');
		out->has_gw = true;
	}
	if (in->source && in->source[0]) {
		int sfam = 0;
		if (parse_ip(&sfam, out->src, in->source) < 0 || sfam != fam ||
		    !unicast_ok(sfam, out->src))
			return sp_error(err, SP_ERR_INVALID,
					"source `%.64s` is not a unicast IPv%c address", in->source,
					fam == AF_INET ? '4' : '6');
		out->has_src = true;
	}
	if (in->scope != 0 && in->scope != 253)
		return sp_error(err, SP_ERR_INVALID,
				"scope %u: only 0 (universe) and 253 (link) are allowed", in->scope);
	if (in->scope == 253 && out->has_gw)
		return sp_error(err, SP_ERR_INVALID, "a link-scope route has no gateway");
	out->scope = in->scope;
	if (in->flags & ~4u)
		return sp_error(err, SP_ERR_INVALID,
				"flags 0x%x: only RTNH_F_ONLINK (4) is allowed", in->flags);
	out->onlink = in->flags & 4u;
	if (out->onlink && !out->has_gw)
		return sp_error(err, SP_ERR_INVALID, "onlink needs a gateway");
	return 0;
}

void agent_net_route_str(char *buf, size_t n, const agent_net_route *r)
{
	char d[INET6_ADDRSTRLEN] = "default", g[INET6_ADDRSTRLEN] = "";
	if (r->dst_len || !r->has_gw) {
		char t[INET6_ADDRSTRLEN];
		inet_ntop(r->family, r->dst, t, sizeof(t));
		snprintf(d, sizeof(d), "%s", t);
	}
	if (r->has_gw)
		inet_ntop(r->family, r->gw, g, sizeof(g));
	if (!r->dst_len && r->has_gw)
		snprintf(buf, n, "default via %s dev %s", g, r->dev);
	else if (r->has_gw)
		snprintf(buf, n, "%s/%u via %s dev %s", d, r->dst_len, g, r->dev);
	else
		snprintf(buf, n, "%s/%u dev %s", d, r->dst_len, r->dev);
}
