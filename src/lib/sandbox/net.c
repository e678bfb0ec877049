/* SPDX-License-Identifier: Apache-2.0 */
/* The pod's network, host side (docs/network.md): the published ports as
 * QEMU hostfwd rules, the pod's DNS lines, and the description the guest
 * agent gets (UpdateInterface, UpdateRoutes) after CreateSandbox. */
#include <arpa/inet.h>
#include <string.h>

#include "agent.pb-c.h"
#include "sealpod/log.h"
#include "sandbox-internal.h"

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

int sp_sandbox_net_setup(sp_sandbox *sb, const sp_sandbox_net *net, sp_err **err)
{
	sb->net_mode = net ? net->mode : SP_SANDBOX_NET_NONE;
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
	for (size_t i = 0; i < sb->n_hostfwd; i++)
		free(sb->hostfwd[i]);
	free(sb->hostfwd);
	for (size_t i = 0; i < sb->n_dns; i++)
		free(sb->dns[i]);
	free(sb->dns);
	sb->hostfwd = sb->dns = NULL;
	sb->n_hostfwd = sb->n_dns = 0;
}

/* After CreateSandbox: the guest's device becomes the pod's eth0. */
int sp_sandbox_net_guest(sp_sandbox *sb, sp_err **err)
{
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
	Sealpod__Agent__V1__UpdateInterfaceRequest ui =
		SEALPOD__AGENT__V1__UPDATE_INTERFACE_REQUEST__INIT;
	ui.interface = &ifc;
	ProtobufCMessage *resp = NULL;
	_cleanup_err_ sp_err *e = NULL;
	if (sp_sandbox_agent_call(sb, "UpdateInterface", &ui.base,
				  &sealpod__agent__v1__interface__descriptor, &resp, 60 * SEC,
				  &e) < 0) {
		/* A pod whose own policy allows no network changes still runs,
		 * on its loopback, unless it publishes ports. */
		if (e->code == SP_ERR_DENIED && !sb->n_hostfwd) {
			sp_log_warn("sandbox %s: no pod network: %s", sb->id, sp_err_msg(e));
			return 0;
		}
		return sp_error(err, e->code, "pod network: eth0 (%s): %s", SP_SANDBOX_USER_NET_MAC,
				sp_err_msg(e));
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	resp = NULL;
	Sealpod__Agent__V1__Route def = SEALPOD__AGENT__V1__ROUTE__INIT;
	def.dest = (char *)"";
	def.gateway = (char *)USER_NET_GW;
	def.device = (char *)"eth0";
	def.family = SEALPOD__AGENT__V1__IPFAMILY__v4;
	Sealpod__Agent__V1__Route *rts[] = {&def};
	Sealpod__Agent__V1__Routes routes = SEALPOD__AGENT__V1__ROUTES__INIT;
	routes.n_routes = 1;
	routes.routes = rts;
	Sealpod__Agent__V1__UpdateRoutesRequest ur = SEALPOD__AGENT__V1__UPDATE_ROUTES_REQUEST__INIT;
	ur.routes = &routes;
	if (sp_sandbox_agent_call(sb, "UpdateRoutes", &ur.base,
				  &sealpod__agent__v1__routes__descriptor, &resp, 60 * SEC, &e) < 0)
		return sp_error(err, e->code, "pod network: routes: %s", sp_err_msg(e));
	protobuf_c_message_free_unpacked(resp, NULL);
	sp_log_info("sandbox %s: pod network eth0 " SP_SANDBOX_USER_NET_GUEST "/24 via " USER_NET_GW
		    ", %zu port(s) published", sb->id, sb->n_hostfwd);
	return 0;
}
