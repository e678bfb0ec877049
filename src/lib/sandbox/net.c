/* SPDX-License-Identifier: Apache-2.0 */
/* The pod's network, host side (docs/network.md): the published ports as
 * QEMU hostfwd rules, the pod's DNS lines, and the description the guest
 * agent gets (UpdateInterface, UpdateRoutes) after CreateSandbox. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if_arp.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "agent.pb-c.h"
#include "netlink/rtnl.h"
#include "sealpod/log.h"
#include "sandbox-internal.h"

#define TAP_NAME "sptap0"
#define MAX_ROUTES 64

/* What the pod's CNI interface carries (NETNS mode). */
struct sp_sandbox_podnet {
	char ifname[IFNAMSIZ];
	int index;
	uint8_t mac[6];
	char macs[18];
	unsigned mtu;
	struct rtnl_addr_list addrs;
	rtnl_route routes[MAX_ROUTES];
	size_t n_routes;
	int tap_index;
	bool joined;
};

/* Reads the CNI interface of the namespace at path: the one link that is
 * not loopback. */
static int podnet_read(sp_sandbox *sb, const char *path, sp_err **err)
{
	sb->podnet = sp_xzalloc(sizeof(*sb->podnet));
	struct sp_sandbox_podnet *p = sb->podnet;
	sb->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (sb->netns_fd < 0)
		return sp_error_sys(err, errno, "pod network namespace %s: open", path);
	rtnl nl = {.fd = -1};
	int r = rtnl_open_in(&nl, sb->netns_fd);
	if (r < 0)
		return sp_error_sys(err, -r, "pod network namespace %s: netlink socket", path);
	rtnl_link_info links[16];
	size_t n = 0;
	r = rtnl_links_get(&nl, links, SP_ARRAY_LEN(links), &n);
	if (r < 0) {
		rtnl_close(&nl);
		return sp_error_sys(err, -r, "pod network namespace %s: list its interfaces", path);
	}
	const rtnl_link_info *cni = NULL;
	for (size_t i = 0; i < n; i++) {
		if (links[i].type == ARPHRD_LOOPBACK)
			continue;
		if (cni) {
			rtnl_close(&nl);
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"pod network namespace %s has interfaces %s and %s; one CNI "
					"interface per pod is supported", path, cni->name, links[i].name);
		}
		cni = &links[i];
	}
	if (!cni || cni->type != ARPHRD_ETHER || !cni->has_mac) {
		rtnl_close(&nl);
		return sp_error(err, SP_ERR_NOT_FOUND,
				"pod network namespace %s has no Ethernet interface (did the CNI plugin run?)",
				path);
	}
	snprintf(p->ifname, sizeof(p->ifname), "%s", cni->name);
	p->index = cni->index;
	memcpy(p->mac, cni->mac, 6);
	snprintf(p->macs, sizeof(p->macs), "%02x:%02x:%02x:%02x:%02x:%02x", p->mac[0], p->mac[1],
		 p->mac[2], p->mac[3], p->mac[4], p->mac[5]);
	p->mtu = cni->mtu;
	if ((r = rtnl_addr_list_get(&nl, &p->addrs, p->index)) < 0) {
		rtnl_close(&nl);
		return sp_error_sys(err, -r, "pod network: interface %s: list its addresses", p->ifname);
	}
	if ((r = rtnl_routes_get(&nl, p->index, p->routes, MAX_ROUTES, &p->n_routes)) < 0) {
		rtnl_close(&nl);
		return sp_error_sys(err, -r, "pod network: interface %s: list its routes", p->ifname);
	}
	rtnl_close(&nl);
	sp_log_info("sandbox %s: pod network %s (%s, MTU %u): %zu address(es), %zu route(s)", sb->id,
		    p->ifname, p->macs, p->mtu, p->addrs.n, p->n_routes);
	return 0;
}

#define SEC 1000000000ull
#define USER_NET_PREFIX "24"
#define USER_NET_GW "10.0.2.2"
#define USER_NET_DNS "nameserver 10.0.2.3"

static void strv_add(char ***v, size_t *n, char *owned)
{
	*v = sp_xrealloc(*v, (*n + 2) * sizeof(char *));
	(*v)[(*n)++] = owned;
	(*v)[*n] = NULL;
}

static void dns_copy(sp_sandbox *sb, const sp_sandbox_net *net)
{
	for (size_t i = 0; net->dns && i < net->n_dns; i++)
		strv_add(&sb->dns, &sb->n_dns, sp_xstrdup(net->dns[i]));
}

int sp_sandbox_net_setup(sp_sandbox *sb, const sp_sandbox_net *net, sp_err **err)
{
	sb->netns_fd = -1;
	sb->net_mode = net ? net->mode : SP_SANDBOX_NET_NONE;
	if (sb->net_mode == SP_SANDBOX_NET_NETNS) {
		if (!net->netns || net->netns[0] != '/')
			return sp_error(err, SP_ERR_INVALID, "the pod's network namespace path is not absolute");
		if (net->n_ports)
			return sp_error(err, SP_ERR_INVALID,
					"ports are published by CNI (portmap) in the pod's namespace, not here");
		if (sb->be != &sp_sandbox_vm_backend)
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"the %s backend cannot join the pod's network namespace", sb->be->name);
		dns_copy(sb, net);
		return podnet_read(sb, net->netns, err);
	}
	if (sb->net_mode == SP_SANDBOX_NET_NONE) {
		if (net && net->n_ports)
			return sp_error(err, SP_ERR_INVALID,
					"ports are published, but the pod has no network");
		return 0;
	}
	if (sb->net_mode != SP_SANDBOX_NET_USER)
		return sp_error(err, SP_ERR_INVALID, "unknown network mode %d", sb->net_mode);
	for (size_t i = 0; i < net->n_ports; i++) {
		const sp_sandbox_port *p = &net->ports[i];
		const char *proto = p->protocol ? p->protocol : "tcp";
		if (strcmp(proto, "tcp") && strcmp(proto, "udp"))
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"port %u: protocol `%s` cannot be published (tcp or udp)",
					p->guest_port, proto);
		if (!p->host_port || p->host_port > 65535 || !p->guest_port || p->guest_port > 65535)
			return sp_error(err, SP_ERR_INVALID,
					"port %u -> %u: ports are 1..65535", p->host_port, p->guest_port);
		struct in_addr ia;
		const char *hip = p->host_ip && *p->host_ip ? p->host_ip : "0.0.0.0";
		if (inet_pton(AF_INET, hip, &ia) != 1)
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"port %u: host address `%s` is not an IPv4 address (QEMU user "
					"networking publishes on IPv4 only)", p->host_port, hip);
		for (size_t k = 0; k < i; k++) {
			const sp_sandbox_port *q = &net->ports[k];
			if (q->host_port == p->host_port &&
			    !strcmp(q->protocol ? q->protocol : "tcp", proto))
				return sp_error(err, SP_ERR_INVALID,
						"host port %s/%u is published twice", proto, p->host_port);
		}
		strv_add(&sb->hostfwd, &sb->n_hostfwd,
			 sp_xasprintf("%s:%s:%u-" SP_SANDBOX_USER_NET_GUEST ":%u", proto, hip,
				      p->host_port, p->guest_port));
	}
	if (net->dns && net->n_dns) {
		for (size_t i = 0; i < net->n_dns; i++)
			strv_add(&sb->dns, &sb->n_dns, sp_xstrdup(net->dns[i]));
	} else {
		strv_add(&sb->dns, &sb->n_dns, sp_xstrdup(USER_NET_DNS));
	}
	return 0;
}

void sp_sandbox_net_clear(sp_sandbox *sb)
{
	if (sb->podnet && sb->netns_fd >= 0)
		close(sb->netns_fd);
	sb->netns_fd = -1;
	free(sb->podnet);
	sb->podnet = NULL;
	for (size_t i = 0; i < sb->n_hostfwd; i++)
		free(sb->hostfwd[i]);
	free(sb->hostfwd);
	for (size_t i = 0; i < sb->n_dns; i++)
		free(sb->dns[i]);
	free(sb->dns);
	sb->hostfwd = sb->dns = NULL;
	sb->n_hostfwd = sb->n_dns = 0;
}

int sp_sandbox_net_enter(sp_sandbox *sb, const char **tap, const char **mac, sp_err **err)
{
	if (setns(sb->netns_fd, CLONE_NEWNET) < 0)
		return sp_error_sys(err, errno, "pod network: enter the pod's network namespace");
	*tap = TAP_NAME;
	*mac = sb->podnet->macs;
	return 0;
}

int sp_sandbox_net_join(sp_sandbox *sb, sp_err **err)
{
	struct sp_sandbox_podnet *p = sb->podnet;
	rtnl nl = {.fd = -1};
	int r = rtnl_open(&nl); /* this thread is in the pod's namespace */
	if (r < 0)
		return sp_error_sys(err, -r, "pod network: netlink socket");
	struct rtnl_link t = {.want_name = TAP_NAME};
	const char *step = "find QEMU's tap " TAP_NAME;
	if ((r = rtnl_link_find(&nl, &t)) < 0 || !t.index) {
		r = r < 0 ? r : -ENODEV;
		goto fail;
	}
	p->tap_index = t.index;
	step = "set the tap's MTU and bring it up";
	if ((r = rtnl_link_set(&nl, t.index, IFF_UP, IFF_UP, NULL, p->mtu, -1)) < 0)
		goto fail;
	step = "add an ingress qdisc";
	if ((r = rtnl_tc_ingress_add(&nl, p->index)) < 0)
		goto fail;
	p->joined = true;
	step = "redirect its ingress to the tap (tc mirred)";
	if ((r = rtnl_tc_redirect(&nl, p->index, t.index)) < 0)
		goto fail;
	step = "add an ingress qdisc to the tap";
	if ((r = rtnl_tc_ingress_add(&nl, t.index)) < 0)
		goto fail;
	step = "redirect the tap's ingress to it (tc mirred)";
	if ((r = rtnl_tc_redirect(&nl, t.index, p->index)) < 0)
		goto fail;
	rtnl_close(&nl);
	sp_log_info("sandbox %s: %s joined to " TAP_NAME " (tc mirred both ways)", sb->id, p->ifname);
	return 0;
fail:
	rtnl_close(&nl);
	return sp_error_sys(err, -r, "pod network: interface %s (%s): %s", p->ifname, p->macs, step);
}

void sp_sandbox_net_unjoin(sp_sandbox *sb)
{
	struct sp_sandbox_podnet *p = sb->podnet;
	if (!p || !p->joined)
		return;
	rtnl nl = {.fd = -1};
	int r = rtnl_open_in(&nl, sb->netns_fd);
	if (r == 0)
		r = rtnl_tc_ingress_del(&nl, p->index);
	rtnl_close(&nl);
	/* Gone already when CNI removed the interface. */
	if (r < 0 && r != -ENODEV && r != -ENOENT && r != -EINVAL)
		sp_log_warn("sandbox %s: pod network: interface %s: remove its ingress qdisc: %s",
			    sb->id, p->ifname, strerror(-r));
	p->joined = false;
}

static int guest_iface_routes(sp_sandbox *sb, Sealpod__Agent__V1__Interface *ifc,
			      Sealpod__Agent__V1__Route **rts, size_t n_rts, sp_err **err);

/* NETNS: the CNI interface's description, as the guest applies it. */
static int guest_podnet(sp_sandbox *sb, sp_err **err)
{
	struct sp_sandbox_podnet *p = sb->podnet;
	Sealpod__Agent__V1__IPAddress ips[64], *ipp[64];
	char astr[64][INET6_ADDRSTRLEN], mstr[64][12];
	size_t n_ip = 0;
	for (size_t i = 0; i < p->addrs.n && n_ip < 64; i++) {
		const struct ifaddrmsg *ifa = &p->addrs.a[i].ifa;
		Sealpod__Agent__V1__IPAddress init = SEALPOD__AGENT__V1__IPADDRESS__INIT;
		ips[n_ip] = init;
		ips[n_ip].family = ifa->ifa_family == AF_INET6 ? SEALPOD__AGENT__V1__IPFAMILY__v6
							       : SEALPOD__AGENT__V1__IPFAMILY__v4;
		inet_ntop(ifa->ifa_family, p->addrs.a[i].addr, astr[n_ip], sizeof(astr[n_ip]));
		snprintf(mstr[n_ip], sizeof(mstr[n_ip]), "%u", ifa->ifa_prefixlen);
		ips[n_ip].address = astr[n_ip];
		ips[n_ip].mask = mstr[n_ip];
		ipp[n_ip] = &ips[n_ip];
		n_ip++;
	}
	Sealpod__Agent__V1__Interface ifc = SEALPOD__AGENT__V1__INTERFACE__INIT;
	ifc.name = p->ifname;
	ifc.hwaddr = p->macs;
	ifc.mtu = p->mtu;
	ifc.n_ipaddresses = n_ip;
	ifc.ipaddresses = ipp;
	Sealpod__Agent__V1__Route rs[MAX_ROUTES], *rp[MAX_ROUTES];
	char dst[MAX_ROUTES][INET6_ADDRSTRLEN + 12], gw[MAX_ROUTES][INET6_ADDRSTRLEN];
	for (size_t i = 0; i < p->n_routes; i++) {
		const rtnl_route *r = &p->routes[i];
		Sealpod__Agent__V1__Route init = SEALPOD__AGENT__V1__ROUTE__INIT;
		rs[i] = init;
		char a[INET6_ADDRSTRLEN];
		inet_ntop(r->family, r->dst, a, sizeof(a));
		if (r->dst_len)
			snprintf(dst[i], sizeof(dst[i]), "%s/%u", a, r->dst_len);
		else
			dst[i][0] = 0;
		gw[i][0] = 0;
		if (r->has_gw)
			inet_ntop(r->family, r->gw, gw[i], sizeof(gw[i]));
		rs[i].dest = dst[i];
		rs[i].gateway = gw[i];
		rs[i].device = p->ifname;
		rs[i].source = (char *)"";
		rs[i].scope = r->scope == RT_SCOPE_LINK ? 253 : 0;
		rs[i].family = r->family == AF_INET6 ? SEALPOD__AGENT__V1__IPFAMILY__v6
						     : SEALPOD__AGENT__V1__IPFAMILY__v4;
		rp[i] = &rs[i];
	}
	int rc = guest_iface_routes(sb, &ifc, rp, p->n_routes, err);
	if (rc < 0)
		return rc;
	sp_log_info("sandbox %s: the guest took %s (%zu address(es), %zu route(s))", sb->id,
		    p->ifname, n_ip, p->n_routes);
	return 0;
}

/* After CreateSandbox: the guest's device becomes the pod's eth0. */
int sp_sandbox_net_guest(sp_sandbox *sb, sp_err **err)
{
	if (sb->net_mode == SP_SANDBOX_NET_NETNS)
		return guest_podnet(sb, err);
	if (sb->net_mode != SP_SANDBOX_NET_USER)
		return 0;
	if (sb->be != &sp_sandbox_vm_backend) {
		sp_log_warn("sandbox %s: the %s backend has no guest network device; the pod "
			    "keeps its loopback only", sb->id, sb->be->name);
		return 0;
	}
	Sealpod__Agent__V1__IPAddress ip = SEALPOD__AGENT__V1__IPADDRESS__INIT;
	ip.family = SEALPOD__AGENT__V1__IPFAMILY__v4;
	ip.address = (char *)SP_SANDBOX_USER_NET_GUEST;
	ip.mask = (char *)USER_NET_PREFIX;
	Sealpod__Agent__V1__IPAddress *ips[] = {&ip};
	Sealpod__Agent__V1__Interface ifc = SEALPOD__AGENT__V1__INTERFACE__INIT;
	ifc.name = (char *)"eth0";
	ifc.hwaddr = (char *)SP_SANDBOX_USER_NET_MAC;
	ifc.mtu = 1500;
	ifc.n_ipaddresses = 1;
	ifc.ipaddresses = ips;
	Sealpod__Agent__V1__Route def = SEALPOD__AGENT__V1__ROUTE__INIT;
	def.dest = (char *)"";
	def.gateway = (char *)USER_NET_GW;
	def.device = (char *)"eth0";
	def.family = SEALPOD__AGENT__V1__IPFAMILY__v4;
	Sealpod__Agent__V1__Route *rts[] = {&def};
	int rc = guest_iface_routes(sb, &ifc, rts, 1, err);
	if (rc <= 0)
		return rc;
	sp_log_info("sandbox %s: pod network eth0 " SP_SANDBOX_USER_NET_GUEST "/24 via " USER_NET_GW
		    ", %zu port(s) published", sb->id, sb->n_hostfwd);
	return 0;
}

static int guest_iface_routes(sp_sandbox *sb, Sealpod__Agent__V1__Interface *ifc,
			      Sealpod__Agent__V1__Route **rts, size_t n_rts, sp_err **err)
{
	Sealpod__Agent__V1__UpdateInterfaceRequest ui =
		SEALPOD__AGENT__V1__UPDATE_INTERFACE_REQUEST__INIT;
	ui.interface = ifc;
	ProtobufCMessage *resp = NULL;
	_cleanup_err_ sp_err *e = NULL;
	if (sp_sandbox_agent_call(sb, "UpdateInterface", &ui.base,
				  &sealpod__agent__v1__interface__descriptor, &resp, 60 * SEC,
				  &e) < 0) {
		/* A pod whose own policy allows no network changes still runs,
		 * on its loopback, unless it publishes ports. */
		if (e->code == SP_ERR_DENIED && sb->net_mode == SP_SANDBOX_NET_USER && !sb->n_hostfwd) {
			sp_log_warn("sandbox %s: no pod network: %s", sb->id, sp_err_msg(e));
			return 0;
		}
		return sp_error(err, e->code, "pod network: %s (%s): %s", ifc->name, ifc->hwaddr,
				sp_err_msg(e));
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	resp = NULL;
	Sealpod__Agent__V1__Routes routes = SEALPOD__AGENT__V1__ROUTES__INIT;
	routes.n_routes = n_rts;
	routes.routes = rts;
	Sealpod__Agent__V1__UpdateRoutesRequest ur = SEALPOD__AGENT__V1__UPDATE_ROUTES_REQUEST__INIT;
	ur.routes = &routes;
	if (sp_sandbox_agent_call(sb, "UpdateRoutes", &ur.base,
				  &sealpod__agent__v1__routes__descriptor, &resp, 60 * SEC, &e) < 0)
		return sp_error(err, e->code, "pod network: routes: %s", sp_err_msg(e));
	protobuf_c_message_free_unpacked(resp, NULL);
	return 1;
}
