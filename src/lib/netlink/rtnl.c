/* SPDX-License-Identifier: Apache-2.0 */
/* rtnetlink requests and dumps (rtnl.h). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <errno.h>
#include <linux/if_link.h>

#include "netlink/rtnl.h"
#include "sealpod/common.h"

#define AGENT_NET_MAX_ROUTES 64




void rtnl_close(rtnl *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

int rtnl_open(rtnl *n)
{
	n->seq = 1;
	n->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (n->fd < 0)
		return -errno;
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	if (bind(n->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		rtnl_close(n);
		return -e;
	}
	return 0;
}

/* This thread enters nsfd for the socket() call only; a netlink socket
 * stays in the namespace it was made in. */
int rtnl_open_in(rtnl *n, int nsfd)
{
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -errno;
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		int e = errno;
		close(self);
		return -e;
	}
	int r = rtnl_open(n);
	if (setns(self, CLONE_NEWNET) < 0)
		abort(); /* a worker thread left in the pod's namespace */
	close(self);
	return r;
}

void rtnl_msg_init(rtnl_msg *m, uint16_t type, uint16_t flags, size_t hdr)
{
	memset(m, 0, sizeof(*m));
	m->h.nlmsg_len = (uint32_t)NLMSG_LENGTH(hdr);
	m->h.nlmsg_type = type;
	m->h.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
}

void *rtnl_body(rtnl_msg *m)
{
	return NLMSG_DATA(&m->h);
}

void rtnl_attr(rtnl_msg *m, uint16_t type, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(m->h.nlmsg_len);
	size_t alen = RTA_LENGTH(len);
	if (off + RTA_ALIGN(alen) > sizeof(m->buf))
		abort(); /* fixed attribute sets: a bug, not input */
	struct rtattr *rta = (struct rtattr *)(m->buf + off);
	rta->rta_type = type;
	rta->rta_len = (unsigned short)alen;
	if (len)
		memcpy(RTA_DATA(rta), data, len);
	m->h.nlmsg_len = (uint32_t)(off + RTA_ALIGN(alen));
}

void rtnl_attr_u32(rtnl_msg *m, uint16_t type, uint32_t v)
{
	rtnl_attr(m, type, &v, sizeof(v));
}


/* Sends m and reads until its ACK (or DONE for a dump), giving every data
 * message to cb. Returns 0 or -errno (the kernel's answer). */
int rtnl_talk(rtnl *n, rtnl_msg *m, rtnl_cb cb, void *ctx)
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
	/* On the heap, not in thread-local storage: every thread of the
	 * agent would carry (and zero at its start) a copy. */
	_cleanup_free_ uint8_t *rbuf = sp_xmalloc(RTNL_RECV_BUF);
	for (;;) {
		ssize_t got = recv(n->fd, rbuf, RTNL_RECV_BUF, 0);
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


/* One RTM_NEWLINK message; false when it is not one. */
static bool link_parse(const struct nlmsghdr *h, rtnl_link_info *out)
{
	if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
		return false;
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	memset(out, 0, sizeof(*out));
	out->index = ifi->ifi_index;
	out->type = ifi->ifi_type;
	out->flags = ifi->ifi_flags;
	int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi)));
	for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
		if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6) {
			memcpy(out->mac, RTA_DATA(a), 6);
			out->has_mac = true;
		} else if (a->rta_type == IFLA_IFNAME && RTA_PAYLOAD(a) > 0 &&
			   RTA_PAYLOAD(a) <= sizeof(out->name) && memchr(RTA_DATA(a), 0, RTA_PAYLOAD(a))) {
			memcpy(out->name, RTA_DATA(a), RTA_PAYLOAD(a));
		} else if (a->rta_type == IFLA_MTU && RTA_PAYLOAD(a) == 4) {
			memcpy(&out->mtu, RTA_DATA(a), 4);
		} else if (a->rta_type == IFLA_LINKINFO) {
			out->has_kind = true;
			int ilen = (int)RTA_PAYLOAD(a);
			for (const struct rtattr *b = RTA_DATA(a); RTA_OK(b, ilen); b = RTA_NEXT(b, ilen))
				if (b->rta_type == IFLA_INFO_KIND && RTA_PAYLOAD(b) < sizeof(out->kind)) {
					memcpy(out->kind, RTA_DATA(b), RTA_PAYLOAD(b));
					out->kind[RTA_PAYLOAD(b)] = 0;
				}
		}
	}
	return true;
}

static int link_cb(const struct nlmsghdr *h, void *ctx)
{
	struct rtnl_link *f = ctx;
	rtnl_link_info li;
	if (!link_parse(h, &li))
		return 0;
	if (f->mac && li.has_mac && !memcmp(li.mac, f->mac, 6)) {
		f->index = li.index;
		f->type = li.type;
		f->has_kind = li.has_kind;
		snprintf(f->kind, sizeof(f->kind), "%s", li.kind);
		snprintf(f->name, sizeof(f->name), "%s", li.name);
	} else if (f->want_name && !strcmp(li.name, f->want_name)) {
		f->name_taken = true;
		if (!f->mac)
			f->index = li.index;
	}
	return 0;
}

struct links_get {
	rtnl_link_info *out;
	size_t max, n;
};

static int links_cb(const struct nlmsghdr *h, void *ctx)
{
	struct links_get *g = ctx;
	rtnl_link_info li;
	if (!link_parse(h, &li))
		return 0;
	if (g->n < g->max)
		g->out[g->n] = li;
	g->n++;
	return 0;
}

int rtnl_links_get(rtnl *n, rtnl_link_info *out, size_t max, size_t *count)
{
	struct links_get g = {.out = out, .max = max};
	rtnl_msg m;
	rtnl_msg_init(&m, RTM_GETLINK, NLM_F_DUMP, sizeof(struct ifinfomsg));
	((struct ifinfomsg *)rtnl_body(&m))->ifi_family = AF_UNSPEC;
	int r = rtnl_talk(n, &m, links_cb, &g);
	*count = g.n;
	return r < 0 ? r : g.n > max ? -E2BIG : 0;
}

int rtnl_link_find(rtnl *n, struct rtnl_link *f)
{
	f->index = 0;
	f->name_taken = false;
	rtnl_msg m;
	rtnl_msg_init(&m, RTM_GETLINK, NLM_F_DUMP, sizeof(struct ifinfomsg));
	((struct ifinfomsg *)rtnl_body(&m))->ifi_family = AF_UNSPEC;
	return rtnl_talk(n, &m, link_cb, f);
}

int rtnl_link_set(rtnl *n, int index, unsigned flags, unsigned change, const char *name,
		    unsigned mtu, int netns_fd)
{
	rtnl_msg m;
	rtnl_msg_init(&m, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
	struct ifinfomsg *ifi = rtnl_body(&m);
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = index;
	ifi->ifi_flags = flags;
	ifi->ifi_change = change;
	if (name)
		rtnl_attr(&m, IFLA_IFNAME, name, strlen(name) + 1);
	if (mtu)
		rtnl_attr_u32(&m, IFLA_MTU, mtu);
	if (netns_fd >= 0)
		rtnl_attr_u32(&m, IFLA_NET_NS_FD, (uint32_t)netns_fd);
	return rtnl_talk(n, &m, NULL, NULL);
}

/* ---- addresses -------------------------------------------------------- */


static int addr_cb(const struct nlmsghdr *h, void *ctx)
{
	struct rtnl_addr_list *l = ctx;
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

int rtnl_addr_list_get(rtnl *n, struct rtnl_addr_list *l, int index)
{
	memset(l, 0, sizeof(*l));
	l->index = index;
	rtnl_msg m;
	rtnl_msg_init(&m, RTM_GETADDR, NLM_F_DUMP, sizeof(struct ifaddrmsg));
	((struct ifaddrmsg *)rtnl_body(&m))->ifa_family = AF_UNSPEC;
	return rtnl_talk(n, &m, addr_cb, l);
}

int rtnl_addr(rtnl *n, uint16_t type, uint16_t flags, int index, int family,
		    const uint8_t *addr, unsigned prefix)
{
	rtnl_msg m;
	rtnl_msg_init(&m, type, flags, sizeof(struct ifaddrmsg));
	struct ifaddrmsg *ifa = rtnl_body(&m);
	ifa->ifa_family = (uint8_t)family;
	ifa->ifa_prefixlen = (uint8_t)prefix;
	ifa->ifa_index = (uint32_t)index;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	size_t len = family == AF_INET ? 4 : 16;
	if (family == AF_INET6)
		ifa->ifa_flags = IFA_F_NODAD; /* usable at once; the host chose it */
	rtnl_attr(&m, IFA_LOCAL, addr, len);
	rtnl_attr(&m, IFA_ADDRESS, addr, len);
	if (family == AF_INET && type == RTM_NEWADDR && prefix < 31) {
		uint8_t b[4];
		memcpy(b, addr, 4);
		for (unsigned bit = prefix; bit < 32; bit++)
			b[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
		rtnl_attr(&m, IFA_BROADCAST, b, 4);
	}
	return rtnl_talk(n, &m, NULL, NULL);
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

int rtnl_routes_flush(rtnl *n, const int *indexes, size_t n_indexes)
{
	_cleanup_free_ struct route_list *l = sp_xzalloc(sizeof(*l));
	l->indexes = indexes;
	l->n_indexes = n_indexes;
	for (int fam = 0; fam < 2; fam++) {
		rtnl_msg m;
		rtnl_msg_init(&m, RTM_GETROUTE, NLM_F_DUMP, sizeof(struct rtmsg));
		((struct rtmsg *)rtnl_body(&m))->rtm_family = fam ? AF_INET6 : AF_INET;
		int r = rtnl_talk(n, &m, route_cb, l);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < l->n; i++) {
		rtnl_msg m;
		rtnl_msg_init(&m, RTM_DELROUTE, 0, sizeof(struct rtmsg));
		struct rtmsg *rt = rtnl_body(&m);
		*rt = l->r[i].rt;
		if (rt->rtm_dst_len)
			rtnl_attr(&m, RTA_DST, l->r[i].dst, rt->rtm_family == AF_INET ? 4 : 16);
		rtnl_attr_u32(&m, RTA_OIF, (uint32_t)l->r[i].oif);
		int r = rtnl_talk(n, &m, NULL, NULL);
		if (r < 0 && r != -ESRCH)
			return r;
	}
	return 0;
}


struct rtattr *rtnl_nest(rtnl_msg *m, uint16_t type)
{
	struct rtattr *nest = (struct rtattr *)(m->buf + NLMSG_ALIGN(m->h.nlmsg_len));
	rtnl_attr(m, type, NULL, 0);
	return nest;
}

void rtnl_nest_end(rtnl_msg *m, struct rtattr *nest)
{
	nest->rta_len = (unsigned short)(m->buf + m->h.nlmsg_len - (uint8_t *)nest);
}

/* ---- routes of a link --------------------------------------------------- */

struct routes_get {
	int oif;
	rtnl_route *out;
	size_t max, n;
};

static int routes_get_cb(const struct nlmsghdr *h, void *ctx)
{
	struct routes_get *g = ctx;
	if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
		return 0;
	const struct rtmsg *rt = NLMSG_DATA(h);
	if (rt->rtm_table != RT_TABLE_MAIN || rt->rtm_protocol == RTPROT_KERNEL ||
	    rt->rtm_type != RTN_UNICAST)
		return 0;
	size_t alen = rt->rtm_family == AF_INET ? 4 : 16;
	int left = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*rt)));
	rtnl_route r = {.family = rt->rtm_family, .dst_len = rt->rtm_dst_len,
			.scope = rt->rtm_scope};
	int oif = 0;
	for (const struct rtattr *a = RTM_RTA(rt); RTA_OK(a, left); a = RTA_NEXT(a, left)) {
		if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) == 4)
			memcpy(&oif, RTA_DATA(a), 4);
		else if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) == alen)
			memcpy(r.dst, RTA_DATA(a), alen);
		else if (a->rta_type == RTA_GATEWAY && RTA_PAYLOAD(a) == alen) {
			memcpy(r.gw, RTA_DATA(a), alen);
			r.has_gw = true;
		}
	}
	if (oif != g->oif)
		return 0;
	/* IPv6 multicast and link-local routes are the kernel's. */
	if (r.family == AF_INET6 && (r.dst[0] == 0xff || (r.dst[0] == 0xfe && (r.dst[1] & 0xc0) == 0x80)))
		return 0;
	if (g->n < g->max)
		g->out[g->n] = r;
	g->n++;
	return 0;
}

int rtnl_routes_get(rtnl *n, int oif, rtnl_route *out, size_t max, size_t *count)
{
	struct routes_get g = {.oif = oif, .out = out, .max = max};
	for (int fam = 0; fam < 2; fam++) {
		rtnl_msg m;
		rtnl_msg_init(&m, RTM_GETROUTE, NLM_F_DUMP, sizeof(struct rtmsg));
		((struct rtmsg *)rtnl_body(&m))->rtm_family = fam ? AF_INET6 : AF_INET;
		int r = rtnl_talk(n, &m, routes_get_cb, &g);
		if (r < 0)
			return r;
	}
	*count = g.n;
	return g.n > max ? -E2BIG : 0;
}

/* ---- tc ----------------------------------------------------------------- */

#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <linux/if_ether.h>

static int ingress_msg(rtnl *n, uint16_t type, uint16_t flags, int index)
{
	rtnl_msg m;
	rtnl_msg_init(&m, type, flags, sizeof(struct tcmsg));
	struct tcmsg *t = rtnl_body(&m);
	t->tcm_family = AF_UNSPEC;
	t->tcm_ifindex = index;
	t->tcm_parent = TC_H_INGRESS;
	t->tcm_handle = TC_H_MAKE(TC_H_INGRESS, 0);
	rtnl_attr(&m, TCA_KIND, "ingress", sizeof("ingress"));
	return rtnl_talk(n, &m, NULL, NULL);
}

int rtnl_tc_ingress_add(rtnl *n, int index)
{
	return ingress_msg(n, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, index);
}

int rtnl_tc_ingress_del(rtnl *n, int index)
{
	return ingress_msg(n, RTM_DELQDISC, 0, index);
}

int rtnl_tc_redirect(rtnl *n, int index, int to_index)
{
	rtnl_msg m;
	rtnl_msg_init(&m, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct tcmsg));
	struct tcmsg *t = rtnl_body(&m);
	t->tcm_family = AF_UNSPEC;
	t->tcm_ifindex = index;
	t->tcm_parent = TC_H_MAKE(TC_H_INGRESS, 0);
	/* Priority 49152, every protocol. */
	t->tcm_info = TC_H_MAKE(49152u << 16, htons(ETH_P_ALL));
	rtnl_attr(&m, TCA_KIND, "u32", sizeof("u32"));
	struct rtattr *opts = rtnl_nest(&m, TCA_OPTIONS);
	/* One key that matches everything (mask 0), terminal. */
	/* The selector with its one key: keys[] is its flexible tail. */
	union {
		struct tc_u32_sel sel;
		uint8_t bytes[sizeof(struct tc_u32_sel) + sizeof(struct tc_u32_key)];
	} sel;
	memset(&sel, 0, sizeof(sel));
	sel.sel.flags = TC_U32_TERMINAL;
	sel.sel.nkeys = 1;
	rtnl_attr(&m, TCA_U32_SEL, sel.bytes, sizeof(sel.bytes));
	struct rtattr *acts = rtnl_nest(&m, TCA_U32_ACT);
	struct rtattr *act = rtnl_nest(&m, 1);
	rtnl_attr(&m, TCA_ACT_KIND, "mirred", sizeof("mirred"));
	struct rtattr *aopts = rtnl_nest(&m, TCA_ACT_OPTIONS);
	struct tc_mirred mir;
	memset(&mir, 0, sizeof(mir));
	mir.action = TC_ACT_STOLEN;
	mir.eaction = TCA_EGRESS_REDIR;
	mir.ifindex = (uint32_t)to_index;
	rtnl_attr(&m, TCA_MIRRED_PARMS, &mir, sizeof(mir));
	rtnl_nest_end(&m, aopts);
	rtnl_nest_end(&m, act);
	rtnl_nest_end(&m, acts);
	rtnl_nest_end(&m, opts);
	return rtnl_talk(n, &m, NULL, NULL);
}
