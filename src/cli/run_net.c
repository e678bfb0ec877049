/* SPDX-License-Identifier: Apache-2.0 */
/* The network of a `sealpod run` pod (docs/network.md): QEMU user
 * networking, the YAML's ports[].hostPort and --publish as hostfwd rules,
 * and one more forward on 127.0.0.1 for each port a TCP or HTTP probe
 * needs that no published port reaches, so that probes run from the host
 * as kubelet runs them. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "run.h"
#include "sealpod/json.h"
#include "sealpod/sandbox.h"

static void add_port(struct run_net *n, const char *proto, const char *host_ip,
		     unsigned host_port, unsigned guest_port, bool probe)
{
	n->ports = sp_xrealloc(n->ports, (n->n + 1) * sizeof(*n->ports));
	n->strs = sp_xrealloc(n->strs, (n->n_strs + 2) * sizeof(char *));
	char *p = sp_xstrdup(proto);
	char *h = sp_xstrdup(host_ip);
	n->strs[n->n_strs++] = p;
	n->strs[n->n_strs++] = h;
	n->ports[n->n] = (sp_sandbox_port){.protocol = p, .host_ip = h, .host_port = host_port,
					   .guest_port = guest_port};
	if (!probe)
		n->n_published = n->n + 1;
	n->n++;
}

/* HOST:CONTAINER, IP:HOST:CONTAINER, optionally /tcp or /udp, as podman's
 * --publish (without ranges). */
static int parse_publish(struct run_net *n, const char *spec, sp_err **err)
{
	char buf[128];
	if (strlen(spec) >= sizeof(buf))
		return sp_error(err, SP_ERR_INVALID, "--publish `%.40s...` is too long", spec);
	snprintf(buf, sizeof(buf), "%s", spec);
	const char *proto = "tcp";
	char *slash = strchr(buf, '/');
	if (slash) {
		*slash = 0;
		proto = slash + 1;
	}
	char *parts[3];
	size_t np = 0;
	for (char *save = NULL, *t = strtok_r(buf, ":", &save); t; t = strtok_r(NULL, ":", &save))
		if (np < 3)
			parts[np++] = t;
		else
			np = 4;
	unsigned v[2];
	const char *ip = "0.0.0.0";
	if (np == 3)
		ip = parts[0];
	if ((np != 2 && np != 3) || (strcmp(proto, "tcp") && strcmp(proto, "udp")))
		goto bad;
	for (int i = 0; i < 2; i++) {
		char *end = NULL;
		unsigned long x = strtoul(parts[np - 2 + i], &end, 10);
		if (!*parts[np - 2 + i] || *end || x < 1 || x > 65535)
			goto bad;
		v[i] = (unsigned)x;
	}
	struct in_addr ia;
	if (inet_pton(AF_INET, ip, &ia) != 1)
		goto bad;
	add_port(n, proto, ip, v[0], v[1], false);
	return 0;
bad:
	return sp_error(err, SP_ERR_INVALID,
			"--publish `%s`: give [IPv4:]HOSTPORT:CONTAINERPORT[/tcp|/udp] with ports 1-65535",
			spec);
}

/* The pod-wide port a probe's `port` names: a number, or the name of one
 * of the container's ports. 0 when it names nothing. */
static unsigned probe_port(const json_t *ctr, const json_t *port)
{
	if (json_is_integer(port)) {
		json_int_t v = json_integer_value(port);
		return v >= 1 && v <= 65535 ? (unsigned)v : 0;
	}
	const char *name = json_string_value(port);
	if (!name)
		return 0;
	/* A numeric string is a number to kubelet, too. */
	char *end = NULL;
	unsigned long v = strtoul(name, &end, 10);
	if (*name && !*end)
		return v >= 1 && v <= 65535 ? (unsigned)v : 0;
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(ctr, "ports"), i, p) {
		const char *pn = json_string_value(json_object_get(p, "name"));
		json_t *cp = json_object_get(p, "containerPort");
		if (pn && !strcmp(pn, name) && json_is_integer(cp))
			return (unsigned)json_integer_value(cp);
	}
	return 0;
}

static const char *const probe_kinds[] = {"startupProbe", "livenessProbe", "readinessProbe"};

unsigned run_net_probe_port(const struct run_net *n, const json_t *ctr, const json_t *probe,
			    unsigned *guest)
{
	const json_t *h = json_object_get(probe, "httpGet");
	const json_t *t = json_object_get(probe, "tcpSocket");
	unsigned gp = probe_port(ctr, json_object_get(h ? h : t, "port"));
	if (guest)
		*guest = gp;
	if (!gp || !n)
		return 0;
	/* A published TCP port on every address or loopback reaches it;
	 * else the probe's own forward on 127.0.0.1. */
	for (size_t i = 0; i < n->n; i++) {
		const sp_sandbox_port *p = &n->ports[i];
		if (p->guest_port == gp && !strcmp(p->protocol, "tcp") &&
		    (!strcmp(p->host_ip, "0.0.0.0") || !strcmp(p->host_ip, "127.0.0.1")))
			return p->host_port;
	}
	return 0;
}

/* A free TCP port on 127.0.0.1 now (QEMU binds it moments later). */
static unsigned free_port(sp_err **err)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &l) < 0) {
		sp_error_sys(err, errno, "a free port on 127.0.0.1 for a probe");
		if (s >= 0)
			close(s);
		return 0;
	}
	close(s);
	return ntohs(a.sin_port);
}

int run_net_plan(struct run_net *n, const struct run_opts *o, const json_t *containers,
		 sp_err **err)
{
	memset(n, 0, sizeof(*n));
	n->mode = !strcmp(o->network, "none") ? SP_SANDBOX_NET_NONE : SP_SANDBOX_NET_USER;
	size_t i;
	json_t *c;
	json_array_foreach(containers, i, c) {
		size_t k;
		json_t *p;
		json_array_foreach(json_object_get(c, "ports"), k, p) {
			json_t *hp = json_object_get(p, "hostPort");
			json_t *cp = json_object_get(p, "containerPort");
			if (!hp)
				continue; /* not published, as in Kubernetes */
			const char *proto = json_string_value(json_object_get(p, "protocol"));
			const char *ip = json_string_value(json_object_get(p, "hostIP"));
			json_int_t h = json_integer_value(hp), g = json_integer_value(cp);
			if (!json_is_integer(hp) || !json_is_integer(cp) || h < 1 || h > 65535 ||
			    g < 1 || g > 65535)
				return sp_error(err, SP_ERR_INVALID,
						"container %s: ports[%zu]: hostPort and containerPort must be 1-65535",
						json_string_value(json_object_get(c, "name")), k);
			if (proto && strcmp(proto, "TCP") && strcmp(proto, "UDP"))
				return sp_error(err, SP_ERR_UNSUPPORTED,
						"container %s: ports[%zu]: protocol %s cannot be published (TCP or UDP)",
						json_string_value(json_object_get(c, "name")), k, proto);
			add_port(n, proto && !strcmp(proto, "UDP") ? "udp" : "tcp",
				 ip && *ip ? ip : "0.0.0.0", (unsigned)h, (unsigned)g, false);
		}
	}
	for (size_t k = 0; k < o->n_publish; k++)
		if (parse_publish(n, o->publish[k], err) < 0)
			return (*err)->code;
	if (n->mode == SP_SANDBOX_NET_NONE) {
		if (n->n)
			return sp_error(err, SP_ERR_INVALID,
					"--network none: ports cannot be published (ports[].hostPort or --publish)");
		return 0;
	}
	/* Forwards for probes that no published port reaches. */
	json_array_foreach(containers, i, c) {
		for (size_t k = 0; k < SP_ARRAY_LEN(probe_kinds); k++) {
			const json_t *pr = json_object_get(c, probe_kinds[k]);
			if (!json_object_get(pr, "httpGet") && !json_object_get(pr, "tcpSocket"))
				continue;
			unsigned gp = 0;
			if (run_net_probe_port(n, c, pr, &gp) || !gp)
				continue;
			unsigned hp = free_port(err);
			if (!hp)
				return (*err)->code;
			add_port(n, "tcp", "127.0.0.1", hp, gp, true);
		}
	}
	return 0;
}

json_t *run_net_ports_json(const struct run_net *n)
{
	json_t *a = json_array();
	for (size_t i = 0; n && i < n->n_published; i++) {
		const sp_sandbox_port *p = &n->ports[i];
		json_array_append_new(a, json_sprintf("%s:%u->%u/%s", p->host_ip, p->host_port,
						      p->guest_port, p->protocol));
	}
	return a;
}

void run_net_clear(struct run_net *n)
{
	for (size_t i = 0; i < n->n_strs; i++)
		free(n->strs[i]);
	free(n->strs);
	free(n->ports);
	memset(n, 0, sizeof(*n));
}
