/* SPDX-License-Identifier: Apache-2.0 */
/* A small rtnetlink client (links, addresses, routes, tc) shared by the
 * guest agent (the pod's interfaces, docs/network.md) and the host side
 * (the pod's tap joined to its CNI interface). Library-internal. Every
 * call returns 0 or -errno as the kernel answered. */
#ifndef SP_NETLINK_RTNL_H
#define SP_NETLINK_RTNL_H

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one recv() of a reply may hold. */
#define RTNL_RECV_BUF 32768

typedef struct rtnl {
	int fd;
	uint32_t seq;
} rtnl;

typedef struct rtnl_msg {
	union {
		struct nlmsghdr h;
		uint8_t buf[1024];
	};
} rtnl_msg;

typedef int (*rtnl_cb)(const struct nlmsghdr *h, void *ctx);

/* A socket in this thread's namespace; _in: in the namespace nsfd
 * (this thread enters it only for the socket() call). */
int rtnl_open(rtnl *n);
int rtnl_open_in(rtnl *n, int nsfd);
void rtnl_close(rtnl *n);

void rtnl_msg_init(rtnl_msg *m, uint16_t type, uint16_t flags, size_t hdr);
void *rtnl_body(rtnl_msg *m);
void rtnl_attr(rtnl_msg *m, uint16_t type, const void *data, size_t len);
void rtnl_attr_u32(rtnl_msg *m, uint16_t type, uint32_t v);
/* Opens a nested attribute; rtnl_nest_end closes it. */
struct rtattr *rtnl_nest(rtnl_msg *m, uint16_t type);
void rtnl_nest_end(rtnl_msg *m, struct rtattr *nest);
/* Sends m, reads to its ACK (or the end of a dump), giving each data
 * message to cb. */
int rtnl_talk(rtnl *n, rtnl_msg *m, rtnl_cb cb, void *ctx);

/* Finds the link with MAC mac (or, by name, with want_name set and mac
 * NULL). index 0 when there is none. */
struct rtnl_link {
	const uint8_t *mac;
	int index;
	unsigned type;    /* ARPHRD_* */
	bool has_kind;    /* IFLA_LINKINFO/IFLA_INFO_KIND: a virtual device */
	char kind[16];
	char name[IFNAMSIZ];
	bool name_taken;  /* another device carries want_name */
	const char *want_name;
};
int rtnl_link_find(rtnl *n, struct rtnl_link *f);

typedef struct rtnl_link_info {
	int index;
	unsigned type, flags, mtu;
	bool has_mac, has_kind;
	uint8_t mac[6];
	char kind[16];
	char name[IFNAMSIZ];
} rtnl_link_info;
/* Every link of the namespace (at most max; -E2BIG when there are more). */
int rtnl_links_get(rtnl *n, rtnl_link_info *out, size_t max, size_t *count);
/* RTM_NEWLINK on index: flags under change, a new name, MTU (0: keep),
 * a namespace to move to (-1: stay). */
int rtnl_link_set(rtnl *n, int index, unsigned flags, unsigned change, const char *name,
		  unsigned mtu, int netns_fd);

struct rtnl_addr_list {
	int index;
	struct {
		struct ifaddrmsg ifa;
		uint8_t addr[16];
	} a[64];
	size_t n;
};
int rtnl_addr_list_get(rtnl *n, struct rtnl_addr_list *l, int index);
int rtnl_addr(rtnl *n, uint16_t type, uint16_t flags, int index, int family, const uint8_t *addr,
	      unsigned prefix);

/* Removes the static (RTPROT_STATIC) main-table routes through indexes. */
int rtnl_routes_flush(rtnl *n, const int *indexes, size_t n_indexes);

/* The routes of the main table through oif that are not the kernel's own
 * (prefix routes of addresses): what a CNI plugin added. */
typedef struct rtnl_route {
	int family;
	uint8_t dst[16];
	unsigned dst_len;
	bool has_gw;
	uint8_t gw[16];
	unsigned scope;
} rtnl_route;
int rtnl_routes_get(rtnl *n, int oif, rtnl_route *out, size_t max, size_t *count);

/* tc: an ingress qdisc on index, and a filter on it that redirects every
 * frame to the egress of to_index (tc mirred, as Kata's tcfilter). */
int rtnl_tc_ingress_add(rtnl *n, int index);
int rtnl_tc_ingress_del(rtnl *n, int index);
int rtnl_tc_redirect(rtnl *n, int index, int to_index);

#endif
