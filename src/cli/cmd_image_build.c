/* SPDX-License-Identifier: Apache-2.0 */
/* `sealpod image build`: the guest image (docs/guest-image.md). */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "sealpod/guest.h"
#include "sealpod/log.h"
#include "sealpod/release.h"

static void usage(void)
{
	fprintf(stderr,
		"usage: sealpod image build [--output DIR] [--kernel sealpod|debian|PATH]\n"
		"         [--modules DIR]\n"
		"         [--agent PATH] [--debug] [--compress auto|lz4|zstd|gzip|none]\n"
		"         [--append ARGS] [--ovmf FILE --vcpus N] [--ca-bundle PEM] [--sign KEY]\n"
		"Writes vmlinuz, initrd.img, cmdline and manifest.json into DIR\n"
		"(default: $SEALPOD_GUEST_DIR, else guest/ next to the sealpod program).\n"
		"--kernel sealpod (the default) builds sealpod's kernel from Debian's\n"
		"linux-source once and caches it; debian takes the newest\n"
		"/boot/vmlinuz-*-cloud-amd64; anything else is a bzImage path.\n"
		"Entry times come from $SOURCE_DATE_EPOCH (default 0).\n"
		"--sign KEY: Ed25519 private key (PEM) that signs manifest.json into\n"
		"manifest.json.sig (docs/guest-image.md, signed release manifests).\n");
}

int cmd_image_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{"output", required_argument, NULL, 'o'},
		{"kernel", required_argument, NULL, 'k'},
		{"modules", required_argument, NULL, 'm'},
		{"agent", required_argument, NULL, 'a'},
		{"debug", no_argument, NULL, 'd'},
		{"compress", required_argument, NULL, 'c'},
		{"append", required_argument, NULL, 'A'},
		{"ovmf", required_argument, NULL, 'O'},
		{"vcpus", required_argument, NULL, 'v'},
		{"sign", required_argument, NULL, 'S'},
		{"ca-bundle", required_argument, NULL, 'B'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	sp_guest_build_opts o;
	sp_guest_build_opts_init(&o);
	_cleanup_free_ char *def_out = sp_guest_default_dir();
	_cleanup_free_ char *def_agent = sp_guest_default_agent();
	o.output_dir = def_out;
	o.agent = def_agent;
	const char *sign_key = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:k:a:dh", opts, NULL)) != -1) {
		switch (c) {
		case 'o': o.output_dir = optarg; break;
		case 'k': o.kernel = optarg; break;
		case 'm': o.modules_dir = optarg; break;
		case 'a': o.agent = optarg; break;
		case 'd': o.debug = true; break;
		case 'A': o.cmdline_extra = optarg; break;
		case 'O': o.ovmf = optarg; break;
		case 'B': o.ca_bundle = optarg; break;
		case 'c':
			if (!strcmp(optarg, "auto"))
				o.compress = SP_GUEST_COMPRESS_AUTO;
			else if (!strcmp(optarg, "gzip"))
				o.compress = SP_GUEST_COMPRESS_GZIP;
			else if (!strcmp(optarg, "zstd"))
				o.compress = SP_GUEST_COMPRESS_ZSTD;
			else if (!strcmp(optarg, "lz4"))
				o.compress = SP_GUEST_COMPRESS_LZ4;
			else if (!strcmp(optarg, "none"))
				o.compress = SP_GUEST_COMPRESS_NONE;
			else {
				fprintf(stderr, "sealpod image build: --compress `%s` is not "
					"auto, lz4, zstd, gzip or none\n", optarg);
				return 2;
			}
			break;
		case 'v': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v < 1 || v > 255) {
				fprintf(stderr, "sealpod image build: --vcpus `%s` is not "
					"a number from 1 to 255\n", optarg);
				return 2;
			}
			o.vcpus = (unsigned)v;
			break;
		}
		case 'S': sign_key = optarg; break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "sealpod image build: unexpected argument `%s`\n", argv[optind]);
		return 2;
	}
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	if (sde && *sde) {
		char *end;
		unsigned long long t = strtoull(sde, &end, 10);
		if (*end || t > UINT32_MAX) {
			fprintf(stderr, "sealpod image build: SOURCE_DATE_EPOCH `%s` is "
				"not a Unix time\n", sde);
			return 2;
		}
		o.mtime = (uint32_t)t;
	}
	_cleanup_err_ sp_err *err = NULL;
	if (sign_key) {
		/* Refuse a bad key before the (slow) build. */
		sp_release_key *k = NULL;
		if (sp_release_key_load_file(&k, sign_key, &err) < 0) {
			fprintf(stderr, "sealpod image build: --sign: %s\n", sp_err_msg(err));
			return 1;
		}
		sp_release_key_free(k);
	}
	if (sp_guest_build(&o, &err) < 0) {
		fprintf(stderr, "sealpod image build: %s\n", sp_err_msg(err));
		return 1;
	}
	if (sign_key) {
		_cleanup_free_ char *mp = sp_xasprintf("%s/" SP_GUEST_MANIFEST, o.output_dir);
		if (sp_release_sign_file(mp, sign_key, &err) < 0) {
			fprintf(stderr, "sealpod image build: --sign: %s\n", sp_err_msg(err));
			return 1;
		}
	}
	printf("%s\n", o.output_dir);
	return 0;
}
