/* SPDX-License-Identifier: Apache-2.0 */
/* The pod's network as containerd's CRI made it (docs/network.md): the
 * sandbox spec names the network namespace CNI filled; the UVM joins it
 * (SP_SANDBOX_NET_NETNS). A sandbox without one (host network, `ctr run`)
 * keeps the guest's loopback only. */
#include <string.h>

#include "sealpod/file.h"
#include "sealpod/log.h"
#include "shim.h"

#define RESOLV_MAX (64u << 10)

/* nameserver/search/options lines of a resolv.conf (CRI's DNSConfig as
 * containerd wrote it), at most 32. */
static void resolv_lines(struct shim_net *n, const char *path)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	_cleanup_err_ sp_err *e = NULL;
	if (sp_read_file(&data, &len, path, RESOLV_MAX, &e) < 0) {
		sp_log_warn("pod DNS: %s", sp_err_msg(e));
		return;
	}
	char *save = NULL;
	for (char *l = strtok_r((char *)data, "\n", &save); l && n->n_dns < 32;
	     l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "nameserver ", 11) && strncmp(l, "search ", 7) && strncmp(l, "options ", 8))
			continue;
		bool ok = true;
		for (const char *p = l; *p; p++)
			ok &= (unsigned char)*p >= 0x20 && *p != 0x7f;
		if (ok)
			n->dns[n->n_dns++] = sp_xstrdup(l);
	}
}

void shim_net_from_spec(struct shim_net *n, const json_t *spec)
{
	memset(n, 0, sizeof(*n));
	size_t i;
	json_t *ns;
	json_array_foreach(json_object_get(json_object_get(spec, "linux"), "namespaces"), i, ns) {
		const char *type = json_string_value(json_object_get(ns, "type"));
		const char *path = json_string_value(json_object_get(ns, "path"));
		if (type && !strcmp(type, "network") && path && path[0] == '/')
			n->netns = sp_xstrdup(path);
	}
	json_t *m;
	json_array_foreach(json_object_get(spec, "mounts"), i, m) {
		const char *dst = json_string_value(json_object_get(m, "destination"));
		const char *src = json_string_value(json_object_get(m, "source"));
		if (dst && src && !strcmp(dst, "/etc/resolv.conf"))
			resolv_lines(n, src);
	}
	n->net.mode = n->netns ? SP_SANDBOX_NET_NETNS : SP_SANDBOX_NET_NONE;
	n->net.netns = n->netns;
	n->net.dns = (const char *const *)n->dns;
	n->net.n_dns = n->n_dns;
}

void shim_net_clear(struct shim_net *n)
{
	free(n->netns);
	for (size_t i = 0; i < n->n_dns; i++)
		free(n->dns[i]);
	memset(n, 0, sizeof(*n));
}
