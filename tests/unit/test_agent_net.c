/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's checks of the host's network description (netcheck.c):
 * accepted descriptions come out as the netlink side needs them, hostile
 * ones are refused naming what was wrong. docs/network.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <sys/socket.h>

#include "agent/agent_net.h"

typedef Sealpod__Agent__V1__Interface Iface;
typedef Sealpod__Agent__V1__IPAddress Ip;
typedef Sealpod__Agent__V1__Route Route;

static Ip ip(int fam, const char *a, const char *m)
{
	Ip x = SEALPOD__AGENT__V1__IPADDRESS__INIT;
	x.family = fam;
	x.address = (char *)a;
	x.mask = (char *)m;
	return x;
}

static int check_iface(const char *name, const char *mac, uint64_t mtu, Ip *ips, size_t n,
		       agent_net_iface *out, char **msg)
{
	Ip *pp[20];
	for (size_t i = 0; i < n; i++)
		pp[i] = &ips[i];
	Iface f = SEALPOD__AGENT__V1__INTERFACE__INIT;
	f.name = (char *)name;
	f.hwaddr = (char *)mac;
	f.mtu = mtu;
	f.ipaddresses = pp;
	f.n_ipaddresses = n;
	sp_err *e = NULL;
	int r = agent_net_parse_iface(out, &f, &e);
	*msg = e ? strdup(sp_err_msg(e)) : NULL;
	sp_err_free(e);
	return r;
}

static void test_iface_accepted(void **state)
{
	(void)state;
	Ip ips[] = {ip(0, "10.88.0.5", "16"), ip(1, "fd00::5", "64")};
	agent_net_iface f;
	char *msg = NULL;
	assert_int_equal(check_iface("eth0", "52:54:00:12:34:56", 1450, ips, 2, &f, &msg), 0);
	assert_string_equal(f.name, "eth0");
	assert_int_equal(f.mac[5], 0x56);
	assert_int_equal(f.mtu, 1450);
	assert_int_equal(f.n_addrs, 2);
	assert_int_equal(f.addrs[0].family, AF_INET);
	assert_int_equal(f.addrs[0].prefix, 16);
	assert_int_equal(f.addrs[0].addr[3], 5);
	assert_int_equal(f.addrs[1].family, AF_INET6);
	assert_int_equal(f.addrs[1].prefix, 64);
}

static void test_iface_refused(void **state)
{
	(void)state;
	struct {
		const char *name, *mac;
		uint64_t mtu;
		Ip ip;
		const char *want;
	} bad[] = {
		{"lo", "52:54:00:12:34:56", 0, ip(0, "10.0.0.2", "24"), "not usable"},
		{"eth0/x", "52:54:00:12:34:56", 0, ip(0, "10.0.0.2", "24"), "not usable"},
		{"eth0", "53:54:00:12:34:56", 0, ip(0, "10.0.0.2", "24"), "unicast MAC"},
		{"eth0", "00:00:00:00:00:00", 0, ip(0, "10.0.0.2", "24"), "unicast MAC"},
		{"eth0", "52:54:00:12:34", 0, ip(0, "10.0.0.2", "24"), "unicast MAC"},
		{"eth0", "52:54:00:12:34:56", 67, ip(0, "10.0.0.2", "24"), "MTU"},
		{"eth0", "52:54:00:12:34:56", 65536, ip(0, "10.0.0.2", "24"), "MTU"},
		{"eth0", "52:54:00:12:34:56", 1200, ip(1, "fd00::2", "64"), "1280"},
		{"eth0", "52:54:00:12:34:56", 0, ip(0, "127.0.0.2", "8"), "unicast address"},
		{"eth0", "52:54:00:12:34:56", 0, ip(1, "::ffff:127.0.0.1", "96"), "unicast address"},
		{"eth0", "52:54:00:12:34:56", 0, ip(0, "0.1.2.3", "8"), "unicast address"},
		{"eth0", "52:54:00:12:34:56", 0, ip(0, "10.0.0.2", "-1"), "prefix length"},
		{"eth0", "52:54:00:12:34:56", 0, ip(0, "10.0.0.2", "24 "), "prefix length"},
		{"eth0", "52:54:00:12:34:56", 0, ip(0, "10.0.0.2", ""), "prefix length"},
		{"eth0", "52:54:00:12:34:56", 0, ip(1, "10.0.0.2", "24"), "IPv6"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		agent_net_iface f;
		char *msg = NULL;
		assert_true(check_iface(bad[i].name, bad[i].mac, bad[i].mtu, &bad[i].ip, 1, &f,
					&msg) < 0);
		if (!strstr(msg, bad[i].want))
			fail_msg("case %zu: `%s` does not say `%s`", i, msg, bad[i].want);
		free(msg);
	}
}

static int check_route(const char *dest, const char *gw, const char *dev, int fam, uint32_t scope,
		       uint32_t flags, agent_net_route *out, char **msg)
{
	Route r = SEALPOD__AGENT__V1__ROUTE__INIT;
	r.dest = (char *)dest;
	r.gateway = (char *)gw;
	r.device = (char *)dev;
	r.family = fam;
	r.scope = scope;
	r.flags = flags;
	sp_err *e = NULL;
	int rc = agent_net_parse_route(out, &r, &e);
	*msg = e ? strdup(sp_err_msg(e)) : NULL;
	sp_err_free(e);
	return rc;
}

static void test_routes(void **state)
{
	(void)state;
	agent_net_route r;
	char *msg = NULL;
	char s[160];
	assert_int_equal(check_route("", "10.0.2.2", "eth0", 0, 0, 0, &r, &msg), 0);
	agent_net_route_str(s, sizeof(s), &r);
	assert_string_equal(s, "default via 10.0.2.2 dev eth0");
	assert_int_equal(check_route("10.1.0.0/16", "", "eth0", 0, 253, 0, &r, &msg), 0);
	agent_net_route_str(s, sizeof(s), &r);
	assert_string_equal(s, "10.1.0.0/16 dev eth0");
	assert_int_equal(check_route("default", "fd00::1", "eth0", 1, 0, 4, &r, &msg), 0);
	assert_true(r.onlink && r.has_gw && r.family == AF_INET6);
	struct {
		const char *dest, *gw, *dev;
		int fam;
		uint32_t scope, flags;
		const char *want;
	} bad[] = {
		{"127.0.0.0/8", "", "eth0", 0, 0, 0, "loopback"},
		{"127.0.0.1", "", "eth0", 0, 0, 0, "loopback"},
		{"::1/128", "", "eth0", 1, 0, 0, "loopback"},
		{"", "10.0.0.1", "lo", 0, 0, 0, "never lo"},
		{"10.0.0.1/8", "", "eth0", 0, 0, 0, "bits set"},
		{"10.0.0.0/33", "", "eth0", 0, 0, 0, "prefix length"},
		{"10.0.0.0/8", "fd00::1", "eth0", 0, 0, 0, "gateway"},
		{"fd00::/8", "", "eth0", 0, 0, 0, "IPv4 CIDR"},
		{"", "224.0.0.1", "eth0", 0, 0, 0, "gateway"},
		{"10.0.0.0/8", "", "eth0", 0, 254, 0, "scope"},
		{"10.0.0.0/8", "10.0.0.1", "eth0", 0, 253, 0, "link-scope"},
		{"10.0.0.0/8", "", "eth0", 0, 0, 4, "onlink"},
		{"10.0.0.0/8", "", "eth0", 0, 0, 2, "flags"},
		{"10.0.0.0/8", "", "eth0", 7, 0, 0, "family"},
		{"ff00::/8", "", "eth0", 1, 0, 0, "multicast"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		free(msg);
		msg = NULL;
		assert_true(check_route(bad[i].dest, bad[i].gw, bad[i].dev, bad[i].fam, bad[i].scope,
					bad[i].flags, &r, &msg) < 0);
		if (!strstr(msg, bad[i].want))
			fail_msg("route case %zu: `%s` does not say `%s`", i, msg, bad[i].want);
	}
	free(msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iface_accepted),
		cmocka_unit_test(test_iface_refused),
		cmocka_unit_test(test_routes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
