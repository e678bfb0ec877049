/* SPDX-License-Identifier: Apache-2.0 */
/* UpdateInterface and UpdateRoutes: the pod's network in the guest, applied
 * with rtnetlink (no `ip`, no shelling out) in the pod's network namespace
 * (<sb>/ns/network, where every container lives). The host's description
 * is validated first (netcheck.c); a device is found by its MAC address
 * among the devices the guest has, moved from the agent's own namespace
 * into the pod's, renamed, given its MTU and addresses and brought up.
 * Every failure names the interface and the step. docs/network.md. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <linux/if_link.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_internal.h"
#include "agent_net.h"
#include "netlink/rtnl.h"
#include "sealpod/log.h"

struct agent_podnet {
	agent_net_iface ifaces[AGENT_NET_MAX_IFACES];
	size_t n;
};

static int route_add(rtnl *n, const agent_net_route *r, int oif)
{
	rtnl_msg m;
	rtnl_msg_init(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct rtmsg));
	struct rtmsg *rt = rtnl_body(&m);
	size_t len = r->family == AF_INET ? 4 : 16;
	rt->rtm_family = (uint8_t)r->family;
	rt->rtm_dst_len = (uint8_t)r->dst_len;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_STATIC;
	rt->rtm_type = RTN_UNICAST;
	rt->rtm_scope = r->has_gw ? RT_SCOPE_UNIVERSE : (r->scope ? (uint8_t)r->scope : RT_SCOPE_LINK);
	if (r->onlink)
		rt->rtm_flags |= RTNH_F_ONLINK;
	if (r->dst_len)
		rtnl_attr(&m, RTA_DST, r->dst, len);
	if (r->has_gw)
		rtnl_attr(&m, RTA_GATEWAY, r->gw, len);
	if (r->has_src)
		rtnl_attr(&m, RTA_PREFSRC, r->src, len);
	rtnl_attr_u32(&m, RTA_OIF, (uint32_t)oif);
	return rtnl_talk(n, &m, NULL, NULL);
}

/* ---- the pod's namespace ---------------------------------------------- */

static int open_pod_netns(sp_agent *a, int *fd, sp_err **err)
{
	if (!a->sandbox_created || !a->ns_made[0])
		return sp_error(err, SP_ERR_STATE,
				"the pod has no network namespace yet: CreateSandbox first");
	_cleanup_free_ char *sb = sandbox_dir(a);
	_cleanup_free_ char *p = sp_xasprintf("%s/ns/network", sb);
	*fd = open(p, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return sp_error_sys(err, errno, "open the pod's network namespace %s", p);
	return 0;
}

/* Natively the agent is a test's host process: it hands over only veth
 * devices, and only when it runs in a network namespace other than its
 * parent's (a test starts it with nsenter into a namespace of its own);
 * else UpdateInterface could take the host's devices (the dispatch fuzzer
 * runs an agent in the host's namespace). Fails closed when the parent's
 * namespace cannot be read. */
static int native_guard(sp_agent *a, const struct rtnl_link *g, sp_err **err)
{
	if (!a->native)
		return 0;
	if (strcmp(g->kind, "veth"))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"a native agent hands only veth devices to the pod; %s is %s",
				g->name, g->kind[0] ? g->kind : "a physical device");
	char pp[64];
	snprintf(pp, sizeof(pp), "/proc/%d/ns/net", (int)getppid());
	struct stat self, parent;
	if (stat("/proc/self/ns/net", &self) < 0 || stat(pp, &parent) < 0 ||
	    (self.st_ino == parent.st_ino && self.st_dev == parent.st_dev))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"a native agent in its parent's network namespace does not move "
				"devices; start it in a namespace of its own (nsenter --net=...)");
	return 0;
}

static void mac_str(char out[18], const uint8_t mac[6])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
		 mac[4], mac[5]);
}

#define STEP(r, what)                                                                   \
	do {                                                                            \
		if ((r) < 0)                                                            \
			return sp_error_sys(err, -(r), "interface %s (%s): %s", want->name, \
					    macs, what);                                \
	} while (0)

/* Moves (if needed) and configures one device; nothing is kept on failure
 * beyond what the step before left (the device stays down). */
static int iface_apply(sp_agent *a, const agent_net_iface *want, sp_err **err)
{
	char macs[18];
	mac_str(macs, want->mac);
	_cleanup_close_ int nsfd = -1;
	if (open_pod_netns(a, &nsfd, err) < 0)
		return (*err)->code;
	rtnl own = {.fd = -1}, pod = {.fd = -1};
	int r = rtnl_open(&own);
	if (r < 0) {
		return sp_error_sys(err, -r, "interface %s: netlink socket", want->name);
	}
	r = rtnl_open_in(&pod, nsfd);
	if (r < 0) {
		rtnl_close(&own);
		return sp_error_sys(err, -r, "interface %s: netlink socket in the pod's namespace",
				    want->name);
	}
	struct rtnl_link f = {.mac = want->mac, .want_name = want->name};
	int rc = 0;
	r = rtnl_link_find(&pod, &f);
	if (r < 0) {
		rc = sp_error_sys(err, -r, "interface %s (%s): list the pod's devices", want->name,
				  macs);
		goto out;
	}
	if (!f.index) {
		/* Not moved yet: one of the agent's own devices. */
		struct rtnl_link g = {.mac = want->mac};
		r = rtnl_link_find(&own, &g);
		if (r < 0) {
			rc = sp_error_sys(err, -r, "interface %s (%s): list the guest's devices",
					  want->name, macs);
			goto out;
		}
		if (!g.index) {
			rc = sp_error(err, SP_ERR_NOT_FOUND,
				      "interface %s: the guest has no network device with MAC %s",
				      want->name, macs);
			goto out;
		}
		/* In the guest only a real (virtio-net) Ethernet device; a
		 * native test may hand over a veth of its own namespace. */
		if (g.type != ARPHRD_ETHER || (g.has_kind && !a->native)) {
			rc = sp_error(err, SP_ERR_INVALID,
				      "interface %s: device %s (%s) is not a physical Ethernet device",
				      want->name, g.name, macs);
			goto out;
		}
		if ((rc = native_guard(a, &g, err)) < 0)
			goto out;
		r = rtnl_link_set(&own, g.index, 0, IFF_UP, NULL, 0, nsfd);
		if (r < 0) {
			rc = sp_error_sys(err, -r,
					  "interface %s (%s, %s): move into the pod's network namespace",
					  want->name, g.name, macs);
			goto out;
		}
		if (!strcmp(g.name, "eth0"))
			a->uplink_up = false; /* the uplink went with it */
		r = rtnl_link_find(&pod, &f);
		if (r < 0 || !f.index) {
			rc = sp_error_sys(err, r < 0 ? -r : ENODEV,
					  "interface %s (%s): find it in the pod's namespace after the move",
					  want->name, macs);
			goto out;
		}
	}
	if (f.name_taken) {
		rc = sp_error(err, SP_ERR_EXISTS,
			      "interface %s (%s): another device in the pod already has that name",
			      want->name, macs);
		goto out;
	}
	{
		/* Down for the rename; addresses replaced as a whole. */
		r = rtnl_link_set(&pod, f.index, 0, IFF_UP, NULL, 0, -1);
		if (r < 0) {
			rc = sp_error_sys(err, -r, "interface %s (%s): set down", want->name, macs);
			goto out;
		}
		if (strcmp(f.name, want->name) &&
		    (r = rtnl_link_set(&pod, f.index, 0, 0, want->name, 0, -1)) < 0) {
			rc = sp_error_sys(err, -r, "interface %s (%s): rename from %s", want->name,
					  macs, f.name);
			goto out;
		}
		if (want->mtu && (r = rtnl_link_set(&pod, f.index, 0, 0, NULL, want->mtu, -1)) < 0) {
			rc = sp_error_sys(err, -r, "interface %s (%s): set MTU %u", want->name, macs,
					  want->mtu);
			goto out;
		}
		_cleanup_free_ struct rtnl_addr_list *l = sp_xzalloc(sizeof(*l));
		if ((r = rtnl_addr_list_get(&pod, l, f.index)) < 0) {
			rc = sp_error_sys(err, -r, "interface %s (%s): list its addresses", want->name,
					  macs);
			goto out;
		}
		for (size_t i = 0; i < l->n; i++) {
			r = rtnl_addr(&pod, RTM_DELADDR, 0, f.index, l->a[i].ifa.ifa_family,
				      l->a[i].addr, l->a[i].ifa.ifa_prefixlen);
			if (r < 0 && r != -EADDRNOTAVAIL) {
				rc = sp_error_sys(err, -r, "interface %s (%s): remove an old address",
						  want->name, macs);
				goto out;
			}
		}
		for (size_t i = 0; i < want->n_addrs; i++) {
			const agent_net_addr *ad = &want->addrs[i];
			r = rtnl_addr(&pod, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, f.index,
				     ad->family, ad->addr, ad->prefix);
			if (r < 0) {
				char s[INET6_ADDRSTRLEN];
				inet_ntop(ad->family, ad->addr, s, sizeof(s));
				rc = sp_error_sys(err, -r, "interface %s (%s): add address %s/%u",
						  want->name, macs, s, ad->prefix);
				goto out;
			}
		}
		r = rtnl_link_set(&pod, f.index, IFF_UP, IFF_UP, NULL, 0, -1);
		if (r < 0) {
			rc = sp_error_sys(err, -r, "interface %s (%s): bring up", want->name, macs);
			goto out;
		}
	}
out:
	rtnl_close(&own);
	rtnl_close(&pod);
	return rc;
}

static agent_net_iface *podnet_find(sp_agent *a, const char *name, const uint8_t *mac)
{
	struct agent_podnet *pn = a->podnet;
	for (size_t i = 0; pn && i < pn->n; i++)
		if ((name && !strcmp(pn->ifaces[i].name, name)) ||
		    (mac && !memcmp(pn->ifaces[i].mac, mac, 6)))
			return &pn->ifaces[i];
	return NULL;
}

int h_update_interface(sp_agent *a, const AUpdateInterface *q, reply *r)
{
	agent_net_iface want;
	_cleanup_err_ sp_err *e = NULL;
	if (agent_net_parse_iface(&want, q->interface, &e) < 0)
		return reply_sp_err(r, e, "UpdateInterface");
	agent_net_iface *old = podnet_find(a, NULL, want.mac);
	agent_net_iface *clash = podnet_find(a, want.name, NULL);
	if (clash && clash != old)
		return reply_err(r, SP_RPC_ALREADY_EXISTS,
				 "UpdateInterface: interface %s: the pod has another device of that name",
				 want.name);
	if (!old && a->podnet && a->podnet->n == AGENT_NET_MAX_IFACES)
		return reply_err(r, SP_RPC_RESOURCE_EXHAUSTED,
				 "UpdateInterface: at most %d interfaces", AGENT_NET_MAX_IFACES);
	if (iface_apply(a, &want, &e) < 0)
		return reply_sp_err(r, e, "UpdateInterface");
	if (!a->podnet)
		a->podnet = sp_xzalloc(sizeof(*a->podnet));
	if (!old)
		old = &a->podnet->ifaces[a->podnet->n++];
	*old = want;
	__atomic_store_n(&a->podnet_up, true, __ATOMIC_RELEASE);
	sp_log_info("UpdateInterface: %s up in the pod with %zu address(es)", want.name,
		    want.n_addrs);
	/* The answer is the interface as applied: the request's own fields. */
	return reply_msg(r, &q->interface->base);
}

int h_update_routes(sp_agent *a, const AUpdateRoutes *q, reply *r)
{
	size_t n = q->routes ? q->routes->n_routes : 0;
	if (n > AGENT_NET_MAX_ROUTES)
		return reply_err(r, SP_RPC_RESOURCE_EXHAUSTED, "UpdateRoutes: %zu routes; at most %d",
				 n, AGENT_NET_MAX_ROUTES);
	_cleanup_free_ agent_net_route *rs = sp_xcalloc(n ? n : 1, sizeof(*rs));
	_cleanup_free_ int *oif = sp_xcalloc(n ? n : 1, sizeof(int));
	for (size_t i = 0; i < n; i++) {
		_cleanup_err_ sp_err *e = NULL;
		if (agent_net_parse_route(&rs[i], q->routes->routes[i], &e) < 0)
			return reply_err(r, SP_RPC_INVALID_ARGUMENT, "UpdateRoutes: route %zu: %s", i,
					 sp_err_msg(e));
		if (!podnet_find(a, rs[i].dev, NULL))
			return reply_err(r, SP_RPC_INVALID_ARGUMENT,
					 "UpdateRoutes: route %zu: device %s is not an interface of the pod "
					 "(UpdateInterface names them)", i, rs[i].dev);
	}
	_cleanup_err_ sp_err *e = NULL;
	_cleanup_close_ int nsfd = -1;
	if (open_pod_netns(a, &nsfd, &e) < 0)
		return reply_sp_err(r, e, "UpdateRoutes");
	if (!a->podnet)
		return reply_err(r, SP_RPC_FAILED_PRECONDITION,
				 "UpdateRoutes: the pod has no interface yet: UpdateInterface first");
	rtnl pod = {.fd = -1};
	int rc = rtnl_open_in(&pod, nsfd);
	if (rc < 0)
		return reply_err(r, SP_RPC_INTERNAL, "UpdateRoutes: netlink socket in the pod's namespace: %s",
				 strerror(-rc));
	int idx[AGENT_NET_MAX_IFACES];
	size_t n_idx = 0;
	for (size_t i = 0; i < a->podnet->n; i++) {
		int k = 0;
		struct rtnl_link f = {.mac = a->podnet->ifaces[i].mac};
		if (rtnl_link_find(&pod, &f) == 0 && f.index)
			k = f.index;
		if (k)
			idx[n_idx++] = k;
	}
	for (size_t i = 0; i < n; i++) {
		const agent_net_iface *ifc = podnet_find(a, rs[i].dev, NULL);
		struct rtnl_link f = {.mac = ifc->mac};
		if (rtnl_link_find(&pod, &f) < 0 || !f.index) {
			rtnl_close(&pod);
			return reply_err(r, SP_RPC_NOT_FOUND,
					 "UpdateRoutes: route %zu: interface %s is gone from the pod", i,
					 rs[i].dev);
		}
		oif[i] = f.index;
	}
	/* The new set replaces the old one: routes to the link first, then
	 * those through a gateway that the first ones reach. On a failure the
	 * pod is left with no static routes rather than half of them. */
	rc = rtnl_routes_flush(&pod, idx, n_idx);
	if (rc < 0) {
		rtnl_close(&pod);
		return reply_err(r, SP_RPC_INTERNAL, "UpdateRoutes: remove the old routes: %s",
				 strerror(-rc));
	}
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			if (rs[i].has_gw != (pass == 1))
				continue;
			rc = route_add(&pod, &rs[i], oif[i]);
			if (rc < 0) {
				char s[160];
				agent_net_route_str(s, sizeof(s), &rs[i]);
				int fr = rtnl_routes_flush(&pod, idx, n_idx);
				rtnl_close(&pod);
				return reply_err(r, rc == -EEXIST ? SP_RPC_ALREADY_EXISTS
								   : SP_RPC_INVALID_ARGUMENT,
						 "UpdateRoutes: route %zu (%s): add: %s%s", i, s,
						 strerror(-rc),
						 fr < 0 ? " (and removing the others failed)" : "; no route of the request was kept");
			}
		}
	rtnl_close(&pod);
	sp_log_info("UpdateRoutes: %zu route(s) in the pod", n);
	if (q->routes)
		return reply_msg(r, &q->routes->base);
	Sealpod__Agent__V1__Routes empty = SEALPOD__AGENT__V1__ROUTES__INIT;
	return reply_msg(r, &empty.base);
}

void agent_net_forget(sp_agent *a)
{
	__atomic_store_n(&a->podnet_up, false, __ATOMIC_RELEASE);
	free(a->podnet);
	a->podnet = NULL;
}

int agent_pull_net_enter(sp_agent *a, int *saved, sp_err **err)
{
	*saved = -1;
	if (!a->podnet || !a->podnet->n)
		return agent_uplink_up(a, err);
	/* The pod has the guest's network device: pulls go out through it,
	 * from this thread, which returns to the agent's namespace after. */
	_cleanup_close_ int nsfd = -1;
	if (open_pod_netns(a, &nsfd, err) < 0)
		return (*err)->code;
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return sp_error_sys(err, errno, "pull: the agent's network namespace");
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		int e = errno;
		close(self);
		return sp_error_sys(err, e, "pull: enter the pod's network namespace");
	}
	*saved = self;
	return 0;
}

void agent_pull_net_leave(int *saved)
{
	if (*saved < 0)
		return;
	if (setns(*saved, CLONE_NEWNET) < 0)
		abort(); /* a worker thread left in the pod's namespace */
	close(*saved);
	*saved = -1;
}
