/* SPDX-License-Identifier: Apache-2.0 */
/* `sealpod image import|pack|pull|config`: the local image store (an OCI
 * layout) and native pulls through the same code the guest agent runs.
 * The `image` verb's dispatcher calls these with argv[0] = the sub-verb. */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "sealpod/err.h"
#include "sealpod/file.h"
#include "sealpod/image.h"
#include "sealpod/json.h"

static char *default_store(void)
{
	const char *x = getenv("XDG_DATA_HOME");
	if (x && *x)
		return sp_xasprintf("%s/sealpod/images", x);
	const char *h = getenv("HOME");
	return sp_xasprintf("%s/.local/share/sealpod/images", h && *h ? h : "/root");
}

static int fail(sp_err *e, const char *verb)
{
	fprintf(stderr, "sealpod image %s: %s\n", verb, sp_err_msg(e));
	sp_err_free(e);
	return 1;
}

/* Prints `usage: sealpod image SYNOPSIS` and returns rc. */
static int usage(const char *synopsis, int rc)
{
	fprintf(stderr, "usage: sealpod image %s\n", synopsis);
	return rc;
}

#define IMPORT_USAGE "import ARCHIVE|DIR [--store DIR] [--tag NAME]"
#define PACK_USAGE "pack [--store DIR] --output FILE REF..."
#define PULL_USAGE                                                             \
	"pull --from dir:P|tar:P|registry:URL --digest sha256:... "            \
	"[--insecure-http] [--username U --password-file F] [--ca-file F] [--resolv-conf F] " \
	"[--cache DIR] [--max-bytes N] [--config-out F] REF DEST"
#define CONFIG_USAGE                                                           \
	"config [--from dir:P|tar:P|registry:URL] "                            \
	"[--insecure-http] [--username U --password-file F] REF"

int cmd_image_import(int argc, char **argv)
{
	static const struct option opts[] = {
		{"store", required_argument, NULL, 's'},
		{"tag", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *store = NULL, *tag = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': store = optarg; break;
		case 't': tag = optarg; break;
		default: return usage(IMPORT_USAGE, c == 'h' ? 0 : 2);
		}
	}
	if (optind != argc - 1)
		return usage(IMPORT_USAGE, 2);
	_cleanup_free_ char *def = store ? NULL : default_store();
	sp_err *e = NULL;
	_cleanup_free_ char *out = NULL;
	if (sp_image_import(argv[optind], store ? store : def, tag, &out, &e) < 0)
		return fail(e, "import");
	fputs(out, stdout);
	return 0;
}

int cmd_image_pack(int argc, char **argv)
{
	static const struct option opts[] = {
		{"store", required_argument, NULL, 's'},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *store = NULL, *output = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': store = optarg; break;
		case 'o': output = optarg; break;
		default: return usage(PACK_USAGE, c == 'h' ? 0 : 2);
		}
	}
	if (!output || optind >= argc)
		return usage(PACK_USAGE, 2);
	_cleanup_free_ char *def = store ? NULL : default_store();
	sp_err *e = NULL;
	if (sp_image_pack(store ? store : def, output, (const char *const *)argv + optind, &e) < 0)
		return fail(e, "pack");
	return 0;
}

/* Where and how pull and config read images: the STORE_OPTS flags. */
struct store_args {
	const char *from, *user, *pwfile, *ca, *resolv;
	bool insecure;
};

#define STORE_OPTS                                                             \
	{"from", required_argument, NULL, 'f'},                                \
	{"insecure-http", no_argument, NULL, 'k'},                             \
	{"username", required_argument, NULL, 'u'},                            \
	{"password-file", required_argument, NULL, 'p'},                       \
	{"ca-file", required_argument, NULL, 'C'},                             \
	{"resolv-conf", required_argument, NULL, 'R'}

/* Takes option c if it is one of STORE_OPTS. */
static bool store_opt(struct store_args *a, int c)
{
	switch (c) {
	case 'f': a->from = optarg; return true;
	case 'k': a->insecure = true; return true;
	case 'u': a->user = optarg; return true;
	case 'p': a->pwfile = optarg; return true;
	case 'C': a->ca = optarg; return true;
	case 'R': a->resolv = optarg; return true;
	default: return false;
	}
}

static int open_store(sp_image_store **s, const struct store_args *a, sp_err **e)
{
	_cleanup_free_ uint8_t *pw = NULL;
	size_t pwlen = 0;
	if (a->pwfile) {
		int r = sp_read_file(&pw, &pwlen, a->pwfile, 4096, e);
		if (r < 0)
			return r;
		while (pwlen && (pw[pwlen - 1] == '\n' || pw[pwlen - 1] == '\r'))
			pw[--pwlen] = 0;
	}
	struct sp_image_store_opts o = {
		.version = SP_IMAGE_STORE_OPTS_VERSION,
		.insecure_http = a->insecure,
		.username = a->user,
		.password = (char *)pw,
		.ca_file = a->ca,
		.resolv_conf = a->resolv,
	};
	return sp_image_store_open(s, a->from, &o, e);
}

/* Pulls natively (tests, debugging): the guest's code path on the host. */
int cmd_image_pull(int argc, char **argv)
{
	static const struct option opts[] = {
		STORE_OPTS,
		{"digest", required_argument, NULL, 'd'},
		{"cache", required_argument, NULL, 'c'},
		{"max-bytes", required_argument, NULL, 'm'},
		{"config-out", required_argument, NULL, 'o'},
		{0},
	};
	struct store_args sa = {0};
	const char *digest = NULL, *cache = NULL, *cfg_out = NULL;
	uint64_t max = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (store_opt(&sa, c))
			continue;
		switch (c) {
		case 'd': digest = optarg; break;
		case 'c': cache = optarg; break;
		case 'o': cfg_out = optarg; break;
		case 'm': max = strtoull(optarg, NULL, 10); break;
		default: return usage(PULL_USAGE, 2);
		}
	}
	if (!sa.from || optind != argc - 2)
		return usage(PULL_USAGE, 2);
	sp_err *e = NULL;
	_cleanup_image_store_ sp_image_store *s = NULL;
	if (open_store(&s, &sa, &e) < 0)
		return fail(e, "pull");
	struct sp_image_limits lim = {
		.version = SP_IMAGE_LIMITS_VERSION, .max_bytes = max, .layer_cache = cache,
	};
	_cleanup_free_ char *cfg = NULL;
	if (sp_image_pull(s, argv[optind], digest, argv[optind + 1], &lim, &cfg, &e) < 0)
		return fail(e, "pull");
	if (cfg_out && sp_write_file_atomic(cfg_out, cfg, strlen(cfg), 0644, &e) < 0)
		return fail(e, "pull");
	return 0;
}

/* Prints {"digest": ..., "config": {...}} for a reference. */
int cmd_image_config(int argc, char **argv)
{
	static const struct option opts[] = {STORE_OPTS, {0}};
	struct store_args sa = {0};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (!store_opt(&sa, c))
			return usage(CONFIG_USAGE, 2);
	if (optind != argc - 1)
		return usage(CONFIG_USAGE, 2);
	sp_err *e = NULL;
	_cleanup_free_ char *def = NULL;
	_cleanup_free_ char *defdir = NULL;
	if (!sa.from) {
		defdir = default_store();
		sa.from = def = sp_xasprintf("dir:%s", defdir);
	}
	_cleanup_image_store_ sp_image_store *s = NULL;
	if (open_store(&s, &sa, &e) < 0)
		return fail(e, "config");
	_cleanup_free_ char *digest = NULL, *cfg = NULL;
	if (sp_image_fetch_config(s, argv[optind], &digest, &cfg, &e) < 0)
		return fail(e, "config");
	_cleanup_json_ json_t *j = NULL;
	if (sp_json_parse(&j, cfg, strlen(cfg), "image config", &e) < 0)
		return fail(e, "config");
	_cleanup_json_ json_t *o = json_pack("{s:s,s:O}", "digest", digest, "config", j);
	_cleanup_free_ char *txt = sp_json_dump_pretty(o);
	printf("%s\n", txt);
	return 0;
}
