/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod release: sign a guest image manifest (as `image build --sign`
 * does) and check a signature, outside of a build. docs/guest-image.md. */
#include <string.h>

#include "cli.h"
#include "sealpod/json.h"
#include "sealpod/release.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sealpod release sign --key KEY MANIFEST      (writes MANIFEST.sig)\n"
		   "       sealpod release verify --key PUB [--sig SIG] MANIFEST\n"
		   "       sealpod release key-id KEY\n"
		   "KEY: Ed25519 private key (PEM, openssl genpkey -algorithm ed25519); PUB: its\n"
		   "public key (openssl pkey -pubout). verify prints the manifest's expected\n"
		   "launch measurements.\n");
}

int cmd_release(int argc, char **argv)
{
	const char *verb = argc >= 2 ? argv[1] : "";
	const char *key = NULL, *sig = NULL, *file = NULL;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--key") && i + 1 < argc)
			key = argv[++i];
		else if (!strcmp(argv[i], "--sig") && i + 1 < argc)
			sig = argv[++i];
		else if (argv[i][0] != '-' && !file)
			file = argv[i];
		else {
			usage(stderr);
			return 2;
		}
	}
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_release_key_ sp_release_key *k = NULL;
	if (!strcmp(verb, "key-id") && file && !key && !sig) {
		if (sp_release_key_load_file(&k, file, &err) < 0)
			goto fail;
		printf("%s\n", sp_release_key_id(k));
		return 0;
	}
	if (!strcmp(verb, "sign") && key && file && !sig) {
		if (sp_release_sign_file(file, key, &err) < 0)
			goto fail;
		printf("%s" SP_RELEASE_SIG_SUFFIX "\n", file);
		return 0;
	}
	if (!strcmp(verb, "verify") && key && file) {
		_cleanup_json_ json_t *m = NULL;
		if (sp_release_key_load_file(&k, key, &err) < 0 ||
		    sp_release_verify_files(&m, k, file, sig, &err) < 0)
			goto fail;
		json_t *snp = json_object_get(m, "snp");
		_cleanup_json_ json_t *out = json_pack(
			"{s:s,s:O,s:O}", "key_id", sp_release_key_id(k), "launch_measurement",
			json_object_get(snp, "launch_measurement") ?: json_null(),
			"sim_launch_measurement",
			json_object_get(snp, "sim_launch_measurement") ?: json_null());
		_cleanup_free_ char *s = sp_json_dump_pretty(out);
		printf("%s\n", s);
		return 0;
	}
	usage(!strcmp(verb, "--help") ? stdout : stderr);
	return !strcmp(verb, "--help") ? 0 : 2;
fail:
	fprintf(stderr, "sealpod release %s: REFUSED: %s: %s\n", verb,
		sp_err_code_name(err->code), sp_err_msg(err));
	return 1;
}
