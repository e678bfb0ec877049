/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's checks of the host's network description: any bytes as an
 * UpdateInterfaceRequest (first byte even) or UpdateRoutesRequest (odd)
 * must be refused or turned into a description within the limits. */
#include <string.h>
#include <sys/socket.h>

#include "agent/agent_net.h"
#include "sealpod/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool routes = data[0] & 1;
	data++;
	size--;
	if (!routes) {
		Sealpod__Agent__V1__UpdateInterfaceRequest *q =
			sealpod__agent__v1__update_interface_request__unpack(NULL, size, data);
		if (!q)
			return 0;
		agent_net_iface f;
		sp_err *e = NULL;
		if (agent_net_parse_iface(&f, q->interface, &e) == 0) {
			if (f.n_addrs > AGENT_NET_MAX_ADDRS || !f.name[0] || !strcmp(f.name, "lo") ||
			    (f.mtu && (f.mtu < 68 || f.mtu > 65535)) || (f.mac[0] & 1))
				abort();
			for (size_t i = 0; i < f.n_addrs; i++)
				if (f.addrs[i].prefix == 0 ||
				    f.addrs[i].prefix > (f.addrs[i].family == AF_INET ? 32u : 128u))
					abort();
		}
		sp_err_free(e);
		sealpod__agent__v1__update_interface_request__free_unpacked(q, NULL);
		return 0;
	}
	Sealpod__Agent__V1__UpdateRoutesRequest *q =
		sealpod__agent__v1__update_routes_request__unpack(NULL, size, data);
	if (!q)
		return 0;
	for (size_t i = 0; q->routes && i < q->routes->n_routes && i < 64; i++) {
		agent_net_route r;
		sp_err *e = NULL;
		if (agent_net_parse_route(&r, q->routes->routes[i], &e) == 0) {
			char s[160];
			agent_net_route_str(s, sizeof(s), &r);
			if (r.family == AF_INET && r.dst_len >= 8 && r.dst[0] == 127)
				abort(); /* loopback must never be routed away */
			if (!r.dev[0] || !strcmp(r.dev, "lo"))
				abort();
		}
		sp_err_free(e);
	}
	sealpod__agent__v1__update_routes_request__free_unpacked(q, NULL);
	return 0;
}
