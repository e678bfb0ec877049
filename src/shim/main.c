/* SPDX-License-Identifier: Apache-2.0 */
/* containerd-shim-sealpod-v2: the containerd shim v2 for sealpod pods.
 * containerd runs it as `<flags> start`, `<flags> delete`; `start`
 * re-executes it without an action to serve the Task API (docs/shim.md). */
#include <signal.h>
#include <string.h>

#include "sealpod/log.h"
#include "shim.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: " SHIM_NAME " -namespace NS -address ADDR -publish-binary BIN -id ID [-bundle DIR] [-debug] start|delete\n"
		"This program is started by containerd (runtime_type io.containerd.sealpod.v2); see docs/shim.md.\n");
}

/* Go's flag package: -name value, --name value, -name=value; bools take
 * no value (or =true/=false). */
static int parse_flags(shim_flags *f, int argc, char **argv)
{
	static const char *const with_value[] = {
		"namespace", "address", "publish-binary", "id", "bundle", "socket",
	};
	int i;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || !a[1])
			break;
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		const char *name = a + (a[1] == '-' ? 2 : 1);
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const char *val = eq ? eq + 1 : NULL;
		if ((nlen == 5 && !strncmp(name, "debug", 5))) {
			f->debug = !val || !strcmp(val, "true") || !strcmp(val, "1");
			continue;
		}
		if ((nlen == 1 && name[0] == 'v') || (nlen == 7 && !strncmp(name, "version", 7))) {
			printf("%s:\n  Version: %s\n  Runtime: io.containerd.sealpod.v2\n",
			       SHIM_NAME, SEALPOD_VERSION);
			exit(0);
		}
		bool known = false;
		for (size_t k = 0; k < SP_ARRAY_LEN(with_value); k++) {
			if (strlen(with_value[k]) == nlen && !strncmp(name, with_value[k], nlen)) {
				known = true;
				break;
			}
		}
		if (!known) {
			fprintf(stderr, SHIM_NAME ": unknown flag %s\n", a);
			usage();
			return -1;
		}
		if (!val) {
			if (i + 1 >= argc) {
				fprintf(stderr, SHIM_NAME ": flag %s needs a value\n", a);
				return -1;
			}
			val = argv[++i];
		}
		if (!strncmp(name, "namespace", nlen))
			f->ns = val;
		else if (!strncmp(name, "address", nlen))
			f->address = val;
		else if (!strncmp(name, "publish-binary", nlen))
			f->publish_binary = val;
		else if (!strncmp(name, "id", nlen))
			f->id = val;
		else if (!strncmp(name, "bundle", nlen))
			f->bundle = val;
		/* -socket (containerd 1.7) is not used: 1.6 never passes it. */
	}
	if (i < argc)
		f->action = argv[i++];
	if (i < argc) {
		fprintf(stderr, SHIM_NAME ": unexpected argument %s\n", argv[i]);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	shim_flags f = {0};
	if (parse_flags(&f, argc, argv) < 0)
		return 2;
	sp_log_init(SHIM_NAME, f.debug ? SP_LOG_DEBUG : SP_LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	if (!f.ns || !*f.ns || !f.id || !*f.id) {
		fprintf(stderr, SHIM_NAME ": -namespace and -id are required\n");
		usage();
		return 2;
	}
	if (!f.action)
		return shim_serve(&f, 3) < 0 ? 1 : 0;
	if (!strcmp(f.action, "start"))
		return shim_start(&f, argv[0]) < 0 ? 1 : 0;
	if (!strcmp(f.action, "delete"))
		return shim_delete(&f) < 0 ? 1 : 0;
	fprintf(stderr, SHIM_NAME ": unknown action \"%s\" (start or delete)\n", f.action);
	usage();
	return 2;
}
