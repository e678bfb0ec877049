/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's uplink: eth0 of the UVM, configured with QEMU user
 * networking's fixed addresses (guest 10.0.2.15/24, gateway 10.0.2.2,
 * which is the host's loopback) so that the agent itself can pull from a
 * registry storage. Nothing of it is chosen by the host: the host only
 * decides whether a registry storage is used (docs/agent.md). The
 * addresses live in the agent's own network namespace; containers run in
 * the pod's namespace, which has only loopback. */
#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include "agent_internal.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/log.h"
#ifdef SP_AGENT_HAVE_POLICY
#include "sealpod/policy.h"
#endif

#define UPLINK_IF "eth0"
#define UPLINK_ADDR "10.0.2.15"
#define UPLINK_MASK "255.255.255.0"
#define UPLINK_GW "10.0.2.2"

static void set_in(struct sockaddr *sa, const char *ip)
{
	struct sockaddr_in *in = (struct sockaddr_in *)sa;
	memset(in, 0, sizeof(*in));
	in->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &in->sin_addr);
}

static int if_ioctl(int s, unsigned long req, struct ifreq *ifr, const char *what,
		    sp_err **err)
{
	if (ioctl(s, req, ifr) < 0)
		return sp_error_sys(err, errno, "uplink %s: %s", UPLINK_IF, what);
	return 0;
}

int agent_uplink_up(sp_agent *a, sp_err **err)
{
	if (a->uplink_up)
		return 0;
	if (a->native) /* the host's own network: nothing to configure */
		return 0;
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return sp_error_sys(err, errno, "uplink: socket");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", UPLINK_IF);
	/* virtio_net is loaded at boot; give the device a moment to appear
	 * when a pull comes right after it. */
	for (int i = 0; ioctl(s, SIOCGIFFLAGS, &ifr) < 0; i++) {
		if (errno != ENODEV || i >= 20)
			return sp_error(err, SP_ERR_NOT_FOUND,
					"uplink: the UVM has no network device %s (%s); a registry storage needs the UVM started with QEMU user networking (virtio-net)",
					UPLINK_IF, strerror(errno));
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	set_in(&ifr.ifr_addr, UPLINK_ADDR);
	if (if_ioctl(s, SIOCSIFADDR, &ifr, "set address " UPLINK_ADDR, err) < 0)
		return (*err)->code;
	set_in(&ifr.ifr_netmask, UPLINK_MASK);
	if (if_ioctl(s, SIOCSIFNETMASK, &ifr, "set netmask", err) < 0 ||
	    if_ioctl(s, SIOCGIFFLAGS, &ifr, "get flags", err) < 0)
		return (*err)->code;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (if_ioctl(s, SIOCSIFFLAGS, &ifr, "bring up", err) < 0)
		return (*err)->code;
	struct rtentry rt;
	memset(&rt, 0, sizeof(rt));
	set_in(&rt.rt_dst, "0.0.0.0");
	set_in(&rt.rt_genmask, "0.0.0.0");
	set_in(&rt.rt_gateway, UPLINK_GW);
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	rt.rt_dev = (char *)UPLINK_IF;
	if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST)
		return sp_error_sys(err, errno, "uplink %s: default route via %s", UPLINK_IF,
				    UPLINK_GW);
	a->uplink_up = true;
	sp_log_info("uplink %s: %s/24 via %s (QEMU user networking)", UPLINK_IF, UPLINK_ADDR,
		    UPLINK_GW);
	return 0;
}

bool registry_source_ok(const char *s)
{
	if (!s)
		return false;
	const char *h = !strncmp(s, "https://", 8) ? s + 8 : !strncmp(s, "http://", 7) ? s + 7 : NULL;
	if (!h || !*h || strlen(s) > 255)
		return false;
	size_t n = strlen(h);
	if (h[n - 1] == '/')
		n--; /* "http://host:port/" */
	if (!n)
		return false;
	/* Only scheme://host[:port]: no user info, path, query or fragment. */
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
			return false;
	}
	return true;
}

int agent_registry_ca(sp_agent *a, const char *url, char **path, sp_err **err)
{
	*path = NULL;
#ifdef SP_AGENT_HAVE_POLICY
	/* The guest image has no CA store: the only CA it trusts for a
	 * registry is the one the policy (bound to HOST_DATA) gives. */
	const char *ca = a->policy ? sp_policy_registry_ca(a->policy, url) : NULL;
	if (!ca)
		return 0;
	if (!strcmp(ca, SP_POLICY_CA_SYSTEM)) {
		/* The bundle measured into the guest image. */
		if (access(SP_GUEST_CA_BUNDLE, R_OK) < 0)
			return sp_error(err, SP_ERR_NOT_FOUND,
					"the policy trusts the system CAs for %s, but this guest image has no %s (sealpod image build adds Debian's ca-certificates)",
					url, SP_GUEST_CA_BUNDLE);
		*path = sp_xstrdup(SP_GUEST_CA_BUNDLE);
		return 0;
	}
	uint8_t h[SP_SHA256_LEN];
	sp_sha256(h, url, strlen(url));
	_cleanup_free_ char *dir = sp_xasprintf("%s/registry-ca", a->state_dir);
	if (sp_mkdir_p(dir, 0700, err) < 0)
		return sp_error_wrap(err, "registry CA");
	char hex[17];
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	/* Rewritten under the agent lock with the same bytes every time (the
	 * policy is fixed), atomically, so a pull reading it meanwhile sees a
	 * whole file. */
	char *p = sp_xasprintf("%s/%s.pem", dir, hex);
	if (sp_write_file_atomic(p, ca, strlen(ca), 0600, err) < 0) {
		free(p);
		return sp_error_wrap(err, "registry CA");
	}
	*path = p;
#else
	(void)a;
	(void)url;
	(void)err;
#endif
	return 0;
}
