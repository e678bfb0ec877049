/* SPDX-License-Identifier: Apache-2.0 */
/* The pod's network in the guest (docs/network.md): the host's description
 * validated (netcheck.c) and applied with netlink in the pod's network
 * namespace (network.c). */
#ifndef SP_AGENT_NET_H
#define SP_AGENT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.pb-c.h"
#include "sealpod/err.h"

#define AGENT_NET_IFNAMSIZ 16
#define AGENT_NET_MAX_ADDRS 16
#define AGENT_NET_MAX_IFACES 8
#define AGENT_NET_MAX_ROUTES 64

typedef struct agent_net_addr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
} agent_net_addr;

typedef struct agent_net_iface {
	char name[AGENT_NET_IFNAMSIZ];
	uint8_t mac[6];
	unsigned mtu; /* 0: keep */
	agent_net_addr addrs[AGENT_NET_MAX_ADDRS];
	size_t n_addrs;
} agent_net_iface;

typedef struct agent_net_route {
	int family;
	uint8_t dst[16];
	unsigned dst_len; /* 0: default */
	bool has_gw, has_src, onlink;
	uint8_t gw[16], src[16];
	unsigned scope;
	char dev[AGENT_NET_IFNAMSIZ];
} agent_net_route;

bool agent_net_parse_mac(uint8_t mac[6], const char *s);
int agent_net_parse_iface(agent_net_iface *out, const Sealpod__Agent__V1__Interface *in,
			  sp_err **err);
int agent_net_parse_route(agent_net_route *out, const Sealpod__Agent__V1__Route *in,
			  sp_err **err);
/* "10.0.0.0/24 via 10.0.0.1 dev eth0", for messages. */
void agent_net_route_str(char *buf, size_t n, const agent_net_route *r);

#endif
