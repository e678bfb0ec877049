/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod kbs get-resource: fetch a resource from a key broker as a guest
 * would (RCAR with evidence from a TEE), for tests and debugging. */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/codec.h"
#include "sealpod/kbs.h"
#include "sealpod/sealed.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sealpod kbs get-resource --url URL --tee sim:SOCKET|snp "
		   "[--out FILE] [--ca FILE] [--evidence-form base64|sev] REPO/TYPE/TAG\n"
		   "       sealpod kbs get-resource --url URL --token-json FILE [--out FILE] "
		   "[--ca FILE] REPO/TYPE/TAG\n"
		   "--token-json: the JSON of the agent's /aa/token?token_type=kbs ({token, "
		   "tee_keypair}); the resource is fetched with that bearer token.\n"
		   "       sealpod kbs seal [--sign-key EC-PEM --kid kbs:///r/t/k] "
		   "kbs:///REPO/TYPE/TAG\n"
		   "       sealpod kbs unseal --url URL --tee sim:SOCKET|snp "
		   "[--require-signature] SEALED\n"
		   "       sealpod kbs jwk EC-PEM   (the public JWK of a sealing key)\n"
		   "       sealpod kbs admin --url URL --token-file F [--ca F] VERB ...: "
		   "put-resource R/T/G FILE,\n"
		   "         set-rule R/T/G RULE.json|'{...}', get-rule [R/T/G], delete-rule R/T/G,\n"
		   "         put-manifest MANIFEST [SIG]\n"
		   "--evidence-form sev sends the report as the sev crate's field-by-field "
		   "object, as CoCo's guest components do.\n"
		   "Test-only flags: --kbs-tee NAME (the tee named in auth), --nonce N (attest "
		   "with another nonce), --protocol V (auth with another version).\n");
}

static int get_resource(int argc, char **argv)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, 'u'},
		{"tee", required_argument, NULL, 't'},
		{"out", required_argument, NULL, 'o'},
		{"ca", required_argument, NULL, 'c'},
		{"kbs-tee", required_argument, NULL, 'k'},
		{"nonce", required_argument, NULL, 'n'},
		{"protocol", required_argument, NULL, 'p'},
		{"evidence-form", required_argument, NULL, 'e'},
		{"token-json", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *url = NULL, *tee_spec = NULL, *out = NULL, *kbs_tee = NULL,
		   *token_json = NULL;
	sp_kbs_client_opts o;
	sp_kbs_client_opts_init(&o);
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'u': url = optarg; break;
		case 't': tee_spec = optarg; break;
		case 'o': out = optarg; break;
		case 'c': o.ca_file = optarg; break;
		case 'k': kbs_tee = optarg; break;
		case 'n': o.nonce_override = optarg; break;
		case 'p': o.version_override = optarg; break;
		case 'e':
			if (strcmp(optarg, "base64") && strcmp(optarg, "sev")) {
				fprintf(stderr, "sealpod kbs: --evidence-form: base64 or sev\n");
				return 2;
			}
			o.sev_evidence = !strcmp(optarg, "sev");
			break;
		case 'T': token_json = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!url || !tee_spec == !token_json || optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	char repo[129], type[129], tag[129];
	const char *p = argv[optind], *s1 = strchr(p, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
	if (!s2 || s1 - p > 128 || s2 - s1 - 1 > 128 || strlen(s2 + 1) > 128) {
		fprintf(stderr, "sealpod kbs: `%s`: want REPO/TYPE/TAG\n", p);
		return 2;
	}
	snprintf(repo, sizeof(repo), "%.*s", (int)(s1 - p), p);
	snprintf(type, sizeof(type), "%.*s", (int)(s2 - s1 - 1), s1 + 1);
	snprintf(tag, sizeof(tag), "%s", s2 + 1);
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	int r;
	if (token_json) {
		/* What the agent's /aa/token?token_type=kbs answers. */
		_cleanup_json_ json_t *j = NULL;
		_cleanup_kbs_key_ sp_kbs_key *key = NULL;
		const char *token = NULL, *pem = NULL;
		if (sp_json_load_file(&j, token_json, 1 << 20, &err) < 0 ||
		    sp_json_get_string(j, "token", true, &token, token_json, &err) < 0 ||
		    sp_json_get_string(j, "tee_keypair", true, &pem, token_json, &err) < 0 ||
		    sp_kbs_key_from_pem(&key, (const uint8_t *)pem, strlen(pem), &err) < 0) {
			fprintf(stderr, "sealpod kbs: --token-json %s: %s\n", token_json,
				sp_err_msg(err));
			return 1;
		}
		r = sp_kbs_client_fetch(&data, &len, url, token, key, repo, type, tag, &o, &err);
		goto done;
	}
	sp_tee *tee = NULL;
	if (strcmp(tee_spec, "snp") && strncmp(tee_spec, "sim:", 4)) {
		fprintf(stderr, "sealpod kbs: --tee `%s`: want sim:SOCKET or snp\n", tee_spec);
		return 2;
	}
	if (sp_tee_open(&tee, tee_spec, &err) < 0) {
		fprintf(stderr, "sealpod kbs: --tee %s: %s\n", tee_spec, sp_err_msg(err));
		return 1;
	}
	if (!kbs_tee)
		kbs_tee = strncmp(tee_spec, "sim:", 4) ? "snp" : "sim";
	r = sp_kbs_client_get_resource(&data, &len, url, kbs_tee, sp_kbs_tee_evidence, tee, repo,
				       type, tag, &o, &err);
	sp_tee_free(tee);
done:
	if (r < 0) {
		fprintf(stderr, "sealpod kbs: %s\n", sp_err_msg(err));
		return 1;
	}
	if (out) {
		if (sp_write_file_atomic(out, data, len, 0600, &err) < 0) {
			fprintf(stderr, "sealpod kbs: --out: %s\n", sp_err_msg(err));
			return 1;
		}
	} else if (sp_write_all(STDOUT_FILENO, data, len) < 0) {
		perror("sealpod kbs: stdout");
		return 1;
	}
	return 0;
}

static sp_kbs_key *load_ec_key(const char *path)
{
	_cleanup_free_ uint8_t *pem = NULL;
	_cleanup_err_ sp_err *err = NULL;
	size_t n = 0;
	sp_kbs_key *k = NULL;
	if (sp_read_file(&pem, &n, path, 1 << 20, &err) < 0 ||
	    sp_kbs_key_from_pem(&k, pem, n, &err) < 0) {
		fprintf(stderr, "sealpod kbs: %s: %s\n", path, sp_err_msg(err));
		return NULL;
	}
	return k;
}

/* sealpod kbs seal [--sign-key PEM --kid kbs:///r/t/k] kbs:///repo/type/tag */
static int seal(int argc, char **argv)
{
	const char *key_path = NULL, *kid = NULL, *uri = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--sign-key") && i + 1 < argc)
			key_path = argv[++i];
		else if (!strcmp(argv[i], "--kid") && i + 1 < argc)
			kid = argv[++i];
		else if (!uri && argv[i][0] != '-')
			uri = argv[i];
		else
			uri = NULL, i = argc;
	}
	if (!uri || !key_path != !kid) {
		usage(stderr);
		return 2;
	}
	_cleanup_kbs_key_ sp_kbs_key *key = key_path ? load_ec_key(key_path) : NULL;
	if (key_path && !key)
		return 1;
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_free_ char *out = NULL;
	if (sp_sealed_seal_vault(&out, uri, key, kid, &err) < 0) {
		fprintf(stderr, "sealpod kbs seal: %s\n", sp_err_msg(err));
		return 1;
	}
	printf("%s\n", out);
	return 0;
}

/* sealpod kbs jwk KEY: the public JWK of an EC P-256 key (the verification
 * key a broker holds for signed sealed secrets). */
static int jwk(int argc, char **argv)
{
	if (argc != 2) {
		usage(stderr);
		return 2;
	}
	_cleanup_kbs_key_ sp_kbs_key *key = load_ec_key(argv[1]);
	if (!key)
		return 1;
	_cleanup_json_ json_t *j = sp_kbs_key_public_jwk(key);
	json_object_del(j, "alg");
	_cleanup_free_ char *s = sp_json_dump_canonical(j);
	printf("%s\n", s);
	return 0;
}

/* sealpod kbs unseal --url URL --tee sim:SOCKET|snp [--require-signature]
 * VALUE: unseals as the guest would (tests and debugging). */
static int unseal(int argc, char **argv)
{
	const char *url = NULL, *tee_spec = NULL, *value = NULL;
	sp_sealed_opts so;
	sp_sealed_opts_init(&so);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--url") && i + 1 < argc)
			url = argv[++i];
		else if (!strcmp(argv[i], "--tee") && i + 1 < argc)
			tee_spec = argv[++i];
		else if (!strcmp(argv[i], "--require-signature"))
			so.require_signature = true;
		else if (!value)
			value = argv[i];
		else
			value = NULL, i = argc;
	}
	if (!url || !tee_spec || !value) {
		usage(stderr);
		return 2;
	}
	_cleanup_err_ sp_err *err = NULL;
	sp_sealed_secret s;
	if (sp_sealed_parse(&s, value, strlen(value), &err) < 0) {
		fprintf(stderr, "sealpod kbs unseal: %s\n", sp_err_msg(err));
		return 1;
	}
	sp_tee *tee = NULL;
	if (sp_tee_open(&tee, tee_spec, &err) < 0) {
		fprintf(stderr, "sealpod kbs unseal: --tee %s: %s\n", tee_spec, sp_err_msg(err));
		sp_sealed_clear(&s);
		return 1;
	}
	sp_kbs_client_opts o;
	sp_kbs_client_opts_init(&o);
	sp_sealed_kbs k = {.url = url, .tee = strncmp(tee_spec, "sim:", 4) ? "snp" : "sim",
			   .evidence = sp_kbs_tee_evidence, .evidence_ctx = tee, .opts = &o};
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	int r = sp_sealed_unseal(&data, &len, &s, sp_sealed_kbs_fetch, &k, &so, &err);
	sp_sealed_kbs_clear(&k);
	sp_sealed_clear(&s);
	sp_tee_free(tee);
	if (r < 0) {
		fprintf(stderr, "sealpod kbs unseal: %s\n", sp_err_msg(err));
		return 1;
	}
	return sp_write_all(STDOUT_FILENO, data, len) < 0 ? 1 : 0;
}

/* sealpod kbs admin --url URL --token-file F [--ca F] VERB ...: the
 * broker's admin API (docs/kbs.md), as Trustee's kbs-client config does. */
static int admin(int argc, char **argv)
{
	const char *url = NULL, *token_file = NULL, *verb = NULL, *args[3] = {NULL};
	int nargs = 0;
	sp_kbs_client_opts o;
	sp_kbs_client_opts_init(&o);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--url") && i + 1 < argc)
			url = argv[++i];
		else if (!strcmp(argv[i], "--token-file") && i + 1 < argc)
			token_file = argv[++i];
		else if (!strcmp(argv[i], "--ca") && i + 1 < argc)
			o.ca_file = argv[++i];
		else if (!verb)
			verb = argv[i];
		else if (nargs < 3)
			args[nargs++] = argv[i];
		else
			verb = NULL, i = argc;
	}
	if (!url || !token_file || !verb) {
		usage(stderr);
		return 2;
	}
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_free_ uint8_t *tok = NULL, *data = NULL, *ans = NULL;
	_cleanup_free_ char *path = NULL, *body = NULL;
	size_t tl = 0, dl = 0, al = 0;
	const char *method = "GET";
	if (sp_read_file(&tok, &tl, token_file, 4096, &err) < 0) {
		fprintf(stderr, "sealpod kbs admin: --token-file: %s\n", sp_err_msg(err));
		return 1;
	}
	tok[strcspn((char *)tok, "\r\n")] = 0;
	if (!strcmp(verb, "put-resource") && nargs == 2) {
		if (sp_read_file(&data, &dl, args[1], SP_KBS_MAX_RESOURCE, &err) < 0)
			goto fail;
		method = "POST";
		path = sp_xasprintf("/kbs/v0/resource/%s", args[0]);
	} else if (!strcmp(verb, "set-rule") && nargs == 2) {
		_cleanup_json_ json_t *rule = NULL, *b = NULL;
		if (args[1][0] == '{' ? sp_json_parse(&rule, args[1], strlen(args[1]), "rule", &err)
				      : sp_json_load_file(&rule, args[1], 1 << 20, &err))
			goto fail;
		b = json_pack("{s:s,s:O}", "path", args[0], "rule", rule);
		body = sp_json_dump_canonical(b);
		method = "POST";
		path = sp_xstrdup("/kbs/v0/resource-policy");
	} else if (!strcmp(verb, "get-rule") && nargs <= 1) {
		path = nargs ? sp_xasprintf("/kbs/v0/resource-policy/%s", args[0])
			     : sp_xstrdup("/kbs/v0/resource-policy");
	} else if (!strcmp(verb, "delete-rule") && nargs == 1) {
		method = "DELETE";
		path = sp_xasprintf("/kbs/v0/resource-policy/%s", args[0]);
	} else if (!strcmp(verb, "put-manifest") && nargs >= 1 && nargs <= 2) {
		_cleanup_free_ uint8_t *sig = NULL;
		_cleanup_free_ char *sig_path = nargs == 2 ? sp_xstrdup(args[1])
							   : sp_xasprintf("%s.sig", args[0]);
		_cleanup_json_ json_t *sj = NULL, *b = NULL;
		size_t sl = 0;
		if (sp_read_file(&data, &dl, args[0], 16u << 20, &err) < 0 ||
		    sp_read_file(&sig, &sl, sig_path, 64 * 1024, &err) < 0 ||
		    sp_json_parse(&sj, sig, sl, sig_path, &err) < 0)
			goto fail;
		_cleanup_free_ char *m64 = sp_base64_encode(data, dl, SP_B64_STD);
		b = json_pack("{s:s,s:O}", "manifest", m64, "signature", sj);
		body = sp_json_dump_canonical(b);
		free(data);
		data = NULL;
		method = "POST";
		path = sp_xstrdup("/kbs/v0/manifest");
	} else {
		usage(stderr);
		return 2;
	}
	int status = 0;
	const void *payload = body ? (const void *)body : (const void *)data;
	size_t plen = body ? strlen(body) : dl;
	if (sp_kbs_admin_request(&status, &ans, &al, url, method, path, (char *)tok, payload, plen,
				 &o, &err) < 0)
		goto fail;
	if (status / 100 != 2) {
		fprintf(stderr, "sealpod kbs admin %s: HTTP %d: %.*s\n", verb, status, (int)al,
			ans ? (char *)ans : "");
		return 1;
	}
	if (al)
		printf("%.*s\n", (int)al, (char *)ans);
	return 0;
fail:
	fprintf(stderr, "sealpod kbs admin %s: %s\n", verb, sp_err_msg(err));
	return 1;
}

int cmd_kbs(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "admin"))
		return admin(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "get-resource"))
		return get_resource(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "seal"))
		return seal(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "unseal"))
		return unseal(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "jwk"))
		return jwk(argc - 1, argv + 1);
	usage(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
	return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
}
