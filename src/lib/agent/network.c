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
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_internal.h"
#include "agent_net.h"
#include "sealpod/log.h"

struct agent_podnet {
	agent_net_iface ifaces[AGENT_NET_MAX_IFACES];
	size_t n;
};

/* ---- netlink ---------------------------------------------------------- */

typedef struct nl {
	int fd;
	uint32_t seq;
} nl;

typedef struct nlmsg {
	union {
		struct nlmsghdr h;
		uint8_t buf[1024];
	};
} nlmsg;

static void nl_close(nl *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

static int nl_open(nl *n)
{
	n->seq = 1;
	n->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (n->fd < 0)
		return -errno;
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	if (bind(n->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		nl_close(n);
		return -e;
	}
	return 0;
}

/* This thread enters nsfd for the socket() call only; a netlink socket
 * stays in the namespace it was made in. */
static int nl_open_in(nl *n, int nsfd)
{
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -errno;
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		int e = errno;
		close(self);
		return -e;
	}
	int r = nl_open(n);
	if (setns(self, CLONE_NEWNET) < 0)
		abort(); /* a worker thread left in the pod's namespace */
	close(self);
	return r;
}

static void msg_init(nlmsg *m, uint16_t type, uint16_t flags, size_t hdr)
{
	memset(m, 0, sizeof(*m));
	m->h.nlmsg_len = (uint32_t)NLMSG_LENGTH(hdr);
	m->h.nlmsg_type = type;
	m->h.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
}

static void *msg_body(nlmsg *m)
{
	return NLMSG_DATA(&m->h);
}

static void attr(nlmsg *m, uint16_t type, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(m->h.nlmsg_len);
	size_t alen = RTA_LENGTH(len);
	if (off + RTA_ALIGN(alen) > sizeof(m->buf))
		abort(); /* fixed attribute sets: a bug, not input */
	struct rtattr *rta = (struct rtattr *)(m->buf + off);
	rta->rta_type = type;
	rta->rta_len = (unsigned short)alen;
	memcpy(RTA_DATA(rta), data, len);
	m->h.nlmsg_len = (uint32_t)(off + RTA_ALIGN(alen));
}

static void attr_u32(nlmsg *m, uint16_t type, uint32_t v)
{
	attr(m, type, &v, sizeof(v));
}

typedef int (*nl_cb)(const struct nlmsghdr *h, void *ctx);

/* Sends m and reads until its ACK (or DONE for a dump), giving every data
 * message to cb. Returns 0 or -errno (the kernel's answer). */
static int nl_talk(nl *n, nlmsg *m, nl_cb cb, void *ctx)
{
	m->h.nlmsg_seq = ++n->seq;
	/* Dumps end with NLMSG_DONE; everything else asks for an ACK. (Not
	 * a test of NLM_F_DUMP's bits: NLM_F_REPLACE shares one of them.) */
	bool dump = m->h.nlmsg_type == RTM_GETLINK || m->h.nlmsg_type == RTM_GETADDR ||
		    m->h.nlmsg_type == RTM_GETROUTE;
	if (!dump)
		m->h.nlmsg_flags |= NLM_F_ACK;
	if (send(n->fd, m->buf, m->h.nlmsg_len, 0) < 0)
		return -errno;
	static __thread uint8_t rbuf[32768];
	for (;;) {
		ssize_t got = recv(n->fd, rbuf, sizeof(rbuf), 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		size_t len = (size_t)got;
		for (struct nlmsghdr *h = (struct nlmsghdr *)rbuf; NLMSG_OK(h, len);
		     h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_seq != n->seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
					return -EPROTO;
				const struct nlmsgerr *e = NLMSG_DATA(h);
				return e->error; /* 0 is the ACK */
			}
			if (cb) {
				int r = cb(h, ctx);
				if (r < 0)
					return r;
			}
		}
	}
}

/* ---- links ------------------------------------------------------------ */

struct link_find {
	const uint8_t *mac;
	int index;
	unsigned type;    /* ARPHRD_* */
	bool has_kind;    /* IFLA_LINKINFO/IFLA_INFO_KIND: a virtual device */
	char kind[16];
	char name[IFNAMSIZ];
	bool name_taken;  /* another device carries want_name */
	const char *want_name;
};

static int link_cb(const struct nlmsghdr *h, void *ctx)
{
	struct link_find *f = ctx;
	if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
		return 0;
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi)));
	const uint8_t *mac = NULL;
	const char *name = NULL;
	bool kind = false;
	char kname[16] = "";
	for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
		if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6)
			mac = RTA_DATA(a);
		else if (a->rta_type == IFLA_IFNAME && RTA_PAYLOAD(a) > 0 &&
			 memchr(RTA_DATA(a), 0, RTA_PAYLOAD(a)))
			name = RTA_DATA(a);
		else if (a->rta_type == IFLA_LINKINFO) {
			kind = true;
			int ilen = (int)RTA_PAYLOAD(a);
			for (const struct rtattr *b = RTA_DATA(a); RTA_OK(b, ilen); b = RTA_NEXT(b, ilen))
				if (b->rta_type == IFLA_INFO_KIND && RTA_PAYLOAD(b) < sizeof(kname)) {
					memcpy(kname, RTA_DATA(b), RTA_PAYLOAD(b));
					kname[RTA_PAYLOAD(b)] = 0;
				}
		}
	}
	bool match = mac && !memcmp(mac, f->mac, 6);
	if (match) {
		f->index = ifi->ifi_index;
		f->type = ifi->ifi_type;
		f->has_kind = kind;
		snprintf(f->kind, sizeof(f->kind), "%s", kname);
		snprintf(f->name, sizeof(f->name), "%s", name ? name : "");
	} else if (name && f->want_name && !strcmp(name, f->want_name)) {
		f->name_taken = true;
	}
	return 0;
}

static int link_find(nl *n, struct link_find *f)
{
	f->index = 0;
	f->name_taken = false;
	nlmsg m;
	msg_init(&m, RTM_GETLINK, NLM_F_DUMP, sizeof(struct ifinfomsg));
	((struct ifinfomsg *)msg_body(&m))->ifi_family = AF_UNSPEC;
	return nl_talk(n, &m, link_cb, f);
}

static int link_set(nl *n, int index, unsigned flags, unsigned change, const char *name,
		    unsigned mtu, int netns_fd)
{
	nlmsg m;
	msg_init(&m, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
	struct ifinfomsg *ifi = msg_body(&m);
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = index;
	ifi->ifi_flags = flags;
	ifi->ifi_change = change;
	if (name)
		attr(&m, IFLA_IFNAME, name, strlen(name) + 1);
	if (mtu)
		attr_u32(&m, IFLA_MTU, mtu);
	if (netns_fd >= 0)
		attr_u32(&m, IFLA_NET_NS_FD, (uint32_t)netns_fd);
	return nl_talk(n, &m, NULL, NULL);
}

/* ---- addresses -------------------------------------------------------- */

struct addr_list {
	int index;
	struct {
		struct ifaddrmsg ifa;
		uint8_t addr[16];
	} a[64];
	size_t n;
};

static int addr_cb(const struct nlmsghdr *h, void *ctx)
{
	struct addr_list *l = ctx;
	if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifaddrmsg)))
		return 0;
	const struct ifaddrmsg *ifa = NLMSG_DATA(h);
	if ((int)ifa->ifa_index != l->index || l->n == SP_ARRAY_LEN(l->a))
		return 0;
	/* The kernel's own link-local v6 address stays. */
	if (ifa->ifa_family == AF_INET6 && ifa->ifa_scope == RT_SCOPE_LINK)
		return 0;
	int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifa)));
	size_t want = ifa->ifa_family == AF_INET ? 4 : 16;
	const void *p = NULL;
	for (const struct rtattr *a = IFA_RTA(ifa); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
		if (RTA_PAYLOAD(a) != want)
			continue;
		if (a->rta_type == IFA_LOCAL) {
			p = RTA_DATA(a);
			break;
		}
		if (a->rta_type == IFA_ADDRESS)
			p = RTA_DATA(a);
	}
	if (!p)
		return 0;
	l->a[l->n].ifa = *ifa;
	memcpy(l->a[l->n].addr, p, want);
	l->n++;
	return 0;
}

static int addr_msg(nl *n, uint16_t type, uint16_t flags, int index, int family,
		    const uint8_t *addr, unsigned prefix)
{
	nlmsg m;
	msg_init(&m, type, flags, sizeof(struct ifaddrmsg));
	struct ifaddrmsg *ifa = msg_body(&m);
	ifa->ifa_family = (uint8_t)family;
	ifa->ifa_prefixlen = (uint8_t)prefix;
	ifa->ifa_index = (uint32_t)index;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	size_t len = family == AF_INET ? 4 : 16;
	if (family == AF_INET6)
		ifa->ifa_flags = IFA_F_NODAD; /* usable at once; the host chose it */
	attr(&m, IFA_LOCAL, addr, len);
	attr(&m, IFA_ADDRESS, addr, len);
	if (family == AF_INET && type == RTM_NEWADDR && prefix < 31) {
		uint8_t b[4];
		memcpy(b, addr, 4);
		for (unsigned bit = prefix; bit < 32; bit++)
			b[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
		attr(&m, IFA_BROADCAST, b, 4);
	}
	return nl_talk(n, &m, NULL, NULL);
}

/* ---- routes ----------------------------------------------------------- */

struct route_list {
	const int *indexes;
	size_t n_indexes;
	struct {
		struct rtmsg rt;
		uint8_t dst[16];
		int oif;
	} r[AGENT_NET_MAX_ROUTES * 2];
	size_t n;
};

static int route_cb(const struct nlmsghdr *h, void *ctx)
{
	struct route_list *l = ctx;
	if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
		return 0;
	const struct rtmsg *rt = NLMSG_DATA(h);
	/* Only what UpdateRoutes added: static routes of the main table. */
	if (rt->rtm_table != RT_TABLE_MAIN || rt->rtm_protocol != RTPROT_STATIC ||
	    l->n == SP_ARRAY_LEN(l->r))
		return 0;
	int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*rt)));
	int oif = 0;
	uint8_t dst[16] = {0};
	for (const struct rtattr *a = RTM_RTA(rt); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
		if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) == 4)
			memcpy(&oif, RTA_DATA(a), 4);
		else if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) <= 16)
			memcpy(dst, RTA_DATA(a), RTA_PAYLOAD(a));
	}
	bool ours = false;
	for (size_t i = 0; i < l->n_indexes; i++)
		ours |= l->indexes[i] == oif;
	if (!ours)
		return 0;
	l->r[l->n].rt = *rt;
	memcpy(l->r[l->n].dst, dst, 16);
	l->r[l->n].oif = oif;
	l->n++;
	return 0;
}

static int routes_flush(nl *n, const int *indexes, size_t n_indexes)
{
	static __thread struct route_list l;
	memset(&l, 0, sizeof(l));
	l.indexes = indexes;
	l.n_indexes = n_indexes;
	for (int fam = 0; fam < 2; fam++) {
		nlmsg m;
		msg_init(&m, RTM_GETROUTE, NLM_F_DUMP, sizeof(struct rtmsg));
		((struct rtmsg *)msg_body(&m))->rtm_family = fam ? AF_INET6 : AF_INET;
		int r = nl_talk(n, &m, route_cb, &l);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < l.n; i++) {
		nlmsg m;
		msg_init(&m, RTM_DELROUTE, 0, sizeof(struct rtmsg));
		struct rtmsg *rt = msg_body(&m);
		*rt = l.r[i].rt;
		if (rt->rtm_dst_len)
			attr(&m, RTA_DST, l.r[i].dst, rt->rtm_family == AF_INET ? 4 : 16);
		attr_u32(&m, RTA_OIF, (uint32_t)l.r[i].oif);
		int r = nl_talk(n, &m, NULL, NULL);
		if (r < 0 && r != -ESRCH)
			return r;
	}
	return 0;
}

static int route_add(nl *n, const agent_net_route *r, int oif)
{
	nlmsg m;
	msg_init(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct rtmsg));
	struct rtmsg *rt = msg_body(&m);
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
		attr(&m, RTA_DST, r->dst, len);
	if (r->has_gw)
		attr(&m, RTA_GATEWAY, r->gw, len);
	if (r->has_src)
		attr(&m, RTA_PREFSRC, r->src, len);
	attr_u32(&m, RTA_OIF, (uint32_t)oif);
	return nl_talk(n, &m, NULL, NULL);
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
static int native_guard(sp_agent *a, const struct link_find *g, sp_err **err)
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
	nl own = {.fd = -1}, pod = {.fd = -1};
	int r = nl_open(&own);
	if (r < 0) {
		return sp_error_sys(err, -r, "interface %s: netlink socket", want->name);
	}
	r = nl_open_in(&pod, nsfd);
	if (r < 0) {
		nl_close(&own);
		return sp_error_sys(err, -r, "interface %s: netlink socket in the pod's namespace",
				    want->name);
	}
	struct link_find f = {.mac = want->mac, .want_name = want->name};
	int rc = 0;
	r = link_find(&pod, &f);
	if (r < 0) {
		rc = sp_error_sys(err, -r, "interface %s (%s): list the pod's devices", want->name,
				  macs);
		goto out;
	}
	if (!f.index) {
		/* Not moved yet: one of the agent's own devices. */
		struct link_find g = {.mac = want->mac};
		r = link_find(&own, &g);
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
		r = link_set(&own, g.index, 0, IFF_UP, NULL, 0, nsfd);
		if (r < 0) {
			rc = sp_error_sys(err, -r,
					  "interface %s (%s, %s): move into the pod's network namespace",
					  want->name, g.name, macs);
			goto out;
		}
		if (!strcmp(g.name, "eth0"))
			a->uplink_up = false; /* the uplink went with it */
		r = link_find(&pod, &f);
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
		r = link_set(&pod, f.index, 0, IFF_UP, NULL, 0, -1);
		if (r < 0) {
			rc = sp_error_sys(err, -r, "interface %s (%s): set down", want->name, macs);
			goto out;
		}
		if (strcmp(f.name, want->name) &&
		    (r = link_set(&pod, f.index, 0, 0, want->name, 0, -1)) < 0) {
			rc = sp_error_sys(err, -r, "interface %s (%s): rename from %s", want->name,
					  macs, f.name);
			goto out;
		}
		if (want->mtu && (r = link_set(&pod, f.index, 0, 0, NULL, want->mtu, -1)) < 0) {
			rc = sp_error_sys(err, -r, "interface %s (%s): set MTU %u", want->name, macs,
					  want->mtu);
			goto out;
		}
		static __thread struct addr_list l;
		memset(&l, 0, sizeof(l));
		l.index = f.index;
		nlmsg m;
		msg_init(&m, RTM_GETADDR, NLM_F_DUMP, sizeof(struct ifaddrmsg));
		((struct ifaddrmsg *)msg_body(&m))->ifa_family = AF_UNSPEC;
		if ((r = nl_talk(&pod, &m, addr_cb, &l)) < 0) {
			rc = sp_error_sys(err, -r, "interface %s (%s): list its addresses", want->name,
					  macs);
			goto out;
		}
		for (size_t i = 0; i < l.n; i++) {
			r = addr_msg(&pod, RTM_DELADDR, 0, f.index, l.a[i].ifa.ifa_family, l.a[i].addr,
				     l.a[i].ifa.ifa_prefixlen);
			if (r < 0 && r != -EADDRNOTAVAIL) {
				rc = sp_error_sys(err, -r, "interface %s (%s): remove an old address",
						  want->name, macs);
				goto out;
			}
		}
		for (size_t i = 0; i < want->n_addrs; i++) {
			const agent_net_addr *ad = &want->addrs[i];
			r = addr_msg(&pod, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, f.index,
				     ad->family, ad->addr, ad->prefix);
			if (r < 0) {
				char s[INET6_ADDRSTRLEN];
				inet_ntop(ad->family, ad->addr, s, sizeof(s));
				rc = sp_error_sys(err, -r, "interface %s (%s): add address %s/%u",
						  want->name, macs, s, ad->prefix);
				goto out;
			}
		}
		r = link_set(&pod, f.index, IFF_UP, IFF_UP, NULL, 0, -1);
		if (r < 0) {
			rc = sp_error_sys(err, -r, "interface %s (%s): bring up", want->name, macs);
			goto out;
		}
	}
out:
	nl_close(&own);
	nl_close(&pod);
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
	nl pod = {.fd = -1};
	int rc = nl_open_in(&pod, nsfd);
	if (rc < 0)
		return reply_err(r, SP_RPC_INTERNAL, "UpdateRoutes: netlink socket in the pod's namespace: %s",
				 strerror(-rc));
	int idx[AGENT_NET_MAX_IFACES];
	size_t n_idx = 0;
	for (size_t i = 0; i < a->podnet->n; i++) {
		int k = 0;
		struct link_find f = {.mac = a->podnet->ifaces[i].mac};
		if (link_find(&pod, &f) == 0 && f.index)
			k = f.index;
		if (k)
			idx[n_idx++] = k;
	}
	for (size_t i = 0; i < n; i++) {
		const agent_net_iface *ifc = podnet_find(a, rs[i].dev, NULL);
		struct link_find f = {.mac = ifc->mac};
		if (link_find(&pod, &f) < 0 || !f.index) {
			nl_close(&pod);
			return reply_err(r, SP_RPC_NOT_FOUND,
					 "UpdateRoutes: route %zu: interface %s is gone from the pod", i,
					 rs[i].dev);
		}
		oif[i] = f.index;
	}
	/* The new set replaces the old one: routes to the link first, then
	 * those through a gateway that the first ones reach. On a failure the
	 * pod is left with no static routes rather than half of them. */
	rc = routes_flush(&pod, idx, n_idx);
	if (rc < 0) {
		nl_close(&pod);
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
				int fr = routes_flush(&pod, idx, n_idx);
				nl_close(&pod);
				return reply_err(r, rc == -EEXIST ? SP_RPC_ALREADY_EXISTS
								   : SP_RPC_INVALID_ARGUMENT,
						 "UpdateRoutes: route %zu (%s): add: %s%s", i, s,
						 strerror(-rc),
						 fr < 0 ? " (and removing the others failed)" : "; no route of the request was kept");
			}
		}
	nl_close(&pod);
	sp_log_info("UpdateRoutes: %zu route(s) in the pod", n);
	if (q->routes)
		return reply_msg(r, &q->routes->base);
	Sealpod__Agent__V1__Routes empty = SEALPOD__AGENT__V1__ROUTES__INIT;
	return reply_msg(r, &empty.base);
}

void agent_net_forget(sp_agent *a)
{
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
