/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod policy: gen, explain, eval, hash, spec. */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/log.h"
#include "sealpod/policy.h"
#include "sealpod/sandbox.h"
#include "agent.pb-c.h"

/* Prints the usage to f; returns the exit code: 0 when asked for (stdout),
 * 2 after a mistake (stderr). */
static int usage(FILE *f)
{
	fprintf(f,
		"usage: sealpod policy gen FILE.yaml [--image-dir DIR] [--registry URL]\n"
		"                          [--username U --password-file F | --authfile F] [--ca-file F]\n"
		"                          [--registry-ca F] [--kbs URL [--kbs-ca F]]\n"
		"                          [--allow-host-path PATH]... [--print-hash]\n"
		"                          [--output FILE | --in-place]\n"
		"       sealpod policy explain POLICY\n"
		"       sealpod policy eval POLICY REQUEST.json [--json] [--repeat N]\n"
		"       sealpod policy hash POLICY\n"
		"       sealpod policy spec POLICY CONTAINER [--values VALUES.json]\n"
		"POLICY is a policy JSON file, its base64, or a Kubernetes YAML file\n"
		"whose pod carries the io.sealpod.policy annotation.\n");
	return f == stdout ? 0 : 2;
}

static int fail(sp_err *err)
{
	fprintf(stderr, "sealpod policy: %s\n", sp_err_msg(err));
	sp_err_free(err);
	return 1;
}

/* Finds the annotation in YAML converted to JSON. */
static const char *find_annotation(const json_t *j)
{
	if (json_is_object(j)) {
		json_t *a = json_object_get(j, "annotations");
		json_t *v = json_is_object(a) ? json_object_get(a, SP_POLICY_ANNOTATION) : NULL;
		if (json_is_string(v))
			return json_string_value(v);
		const char *k;
		json_t *c;
		json_object_foreach((json_t *)j, k, c) {
			const char *r = find_annotation(c);
			if (r)
				return r;
		}
	} else if (json_is_array(j)) {
		size_t i;
		json_t *c;
		json_array_foreach(j, i, c) {
			const char *r = find_annotation(c);
			if (r)
				return r;
		}
	}
	return NULL;
}

static int load_policy(sp_policy **out, const char *path, sp_err **err)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	if (sp_read_file(&data, &len, path, 16u << 20, err) < 0)
		return (*err)->code;
	size_t skip = strspn((char *)data, " \t\r\n");
	_cleanup_json_ json_t *doc = NULL;
	_cleanup_free_ uint8_t *dec = NULL;
	size_t dlen = 0;
	if (data[skip] == '{') {
		if (sp_json_parse(&doc, data, len, path, err) < 0)
			return (*err)->code;
	} else {
		size_t n = len;
		while (n > 0 && strchr(" \t\r\n", data[n - 1]))
			n--;
		const char *b64 = (const char *)data + skip;
		_cleanup_json_ json_t *yaml = NULL;
		if (sp_base64_decode(&dec, &dlen, b64, n - skip, SP_B64_STD, NULL) < 0) {
			if (sp_yaml_to_json(data, len, &yaml, NULL) < 0 || !(b64 = find_annotation(yaml)))
				return sp_error(err, SP_ERR_PARSE,
						"%s: neither policy JSON, base64 of it, nor YAML with the %s annotation",
						path, SP_POLICY_ANNOTATION);
			if (sp_base64_decode(&dec, &dlen, b64, strlen(b64), SP_B64_STD, err) < 0)
				return sp_error_wrap(err, "%s: annotation %s", path, SP_POLICY_ANNOTATION);
		}
		if (sp_json_parse(&doc, dec, dlen, path, err) < 0)
			return (*err)->code;
	}
	if (sp_policy_load_json(out, doc, err) < 0)
		return sp_error_wrap(err, "%s", path);
	return 0;
}

static void print_hash(const sp_policy *p)
{
	uint8_t h[SP_SHA256_LEN];
	char hex[2 * SP_SHA256_LEN + 1];
	sp_policy_hash(p, h);
	sp_hex_encode(hex, h, sizeof(h));
	printf("%s\n", hex);
}

static void print_explain(const sp_policy *p)
{
	char *s = sp_policy_explain(p);
	fputs(s, stdout);
	free(s);
}

/* `hash|explain POLICY`: prints what show makes of the one policy named. */
static int show_policy(int argc, char **argv, void (*show)(const sp_policy *))
{
	if (argc != 2)
		return usage(stderr);
	sp_policy *p = NULL;
	sp_err *err = NULL;
	if (load_policy(&p, argv[1], &err) < 0)
		return fail(err);
	show(p);
	sp_policy_free(p);
	return 0;
}

static int do_spec(int argc, char **argv)
{
	const char *values_path = NULL;
	char *pos[2];
	int np = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--values") && i + 1 < argc)
			values_path = argv[++i];
		else if (np < 2 && argv[i][0] != '-')
			pos[np++] = argv[i];
		else
			return usage(stderr);
	}
	if (np != 2)
		return usage(stderr);
	sp_policy *p = NULL;
	sp_err *err = NULL;
	_cleanup_json_ json_t *values = NULL, *spec = NULL;
	if (load_policy(&p, pos[0], &err) < 0)
		return fail(err);
	int idx = sp_policy_container_find(p, pos[1]);
	int rc = 0;
	if (idx < 0) {
		fprintf(stderr, "sealpod policy: the policy has no container `%s`; `sealpod policy explain` lists them\n",
			pos[1]);
		rc = 1;
	} else if ((values_path && sp_json_load_file(&values, values_path, 1u << 20, &err) < 0) ||
		   sp_policy_container_spec(p, (size_t)idx, values, &spec, &err) < 0) {
		rc = fail(err);
	} else {
		char *s = sp_json_dump_pretty(spec);
		printf("%s\n", s);
		free(s);
	}
	sp_policy_free(p);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* --repeat N: times N evaluations of one request, each with fresh state,
 * next to parsing the request's JSON alone (the floor any evaluator pays). */
static void time_eval(const sp_policy *p, const char *kind, const ProtobufCMessage *msg, long n)
{
	uint64_t *t = sp_xcalloc((size_t)n, sizeof(uint64_t)), *u = sp_xcalloc((size_t)n, sizeof(uint64_t));
	const ProtobufCBinaryData *spec = NULL;
	if (msg && msg->descriptor == &sealpod__agent__v1__create_container_request__descriptor)
		spec = &((const Sealpod__Agent__V1__CreateContainerRequest *)msg)->oci_spec;
	for (long i = 0; i < n; i++) {
		sp_policy_state *st = sp_policy_state_new();
		sp_policy_decision d;
		uint64_t t0 = sp_now_ns();
		sp_policy_eval(p, st, kind, msg, &d);
		t[i] = sp_now_ns() - t0;
		sp_policy_decision_clear(&d);
		sp_policy_state_free(st);
		if (spec) {
			t0 = sp_now_ns();
			json_t *j = json_loadb((const char *)spec->data, spec->len, 0, NULL);
			u[i] = sp_now_ns() - t0;
			json_decref(j);
		}
	}
	qsort(t, (size_t)n, sizeof(uint64_t), cmp_u64);
	qsort(u, (size_t)n, sizeof(uint64_t), cmp_u64);
	size_t p99 = (size_t)((double)n * 0.99);
	if (p99 >= (size_t)n)
		p99 = (size_t)n - 1;
	printf("%s: %ld evaluations: median %.1f us, p99 %.1f us", kind, n, t[n / 2] / 1e3, t[p99] / 1e3);
	if (spec)
		printf("; parsing its oci_spec (%zu bytes) alone: median %.1f us, p99 %.1f us", spec->len,
		       u[n / 2] / 1e3, u[p99] / 1e3);
	printf("\n");
	free(t);
	free(u);
}

static int do_eval(int argc, char **argv)
{
	bool as_json = false;
	long repeat = 0;
	char *pos[2];
	int np = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			as_json = true;
		else if (!strcmp(argv[i], "--repeat") && i + 1 < argc && (repeat = atol(argv[++i])) > 0)
			continue;
		else if (np < 2 && argv[i][0] != '-')
			pos[np++] = argv[i];
		else
			return usage(stderr);
	}
	if (np != 2)
		return usage(stderr);
	sp_policy *p = NULL;
	sp_err *err = NULL;
	_cleanup_json_ json_t *reqs = NULL;
	if (load_policy(&p, pos[0], &err) < 0)
		return fail(err);
	if (sp_json_load_file(&reqs, pos[1], 64u << 20, &err) < 0) {
		sp_policy_free(p);
		return fail(err);
	}
	/* One request, or an array evaluated in order with shared state. */
	if (json_is_object(reqs)) {
		json_t *a = json_array();
		json_array_append(a, reqs);
		json_decref(reqs);
		reqs = a;
	}
	sp_policy_state *st = sp_policy_state_new();
	int rc = 0;
	size_t i;
	json_t *r;
	json_t *out = json_array();
	json_array_foreach(reqs, i, r) {
		const char *kind = NULL;
		ProtobufCMessage *msg = NULL;
		sp_policy_decision d;
		if (sp_policy_request_expand(p, r, &err) < 0 ||
		    sp_policy_request_from_json(r, &kind, &msg, &err) < 0) {
			fprintf(stderr, "sealpod policy: %s: request %zu: %s\n", pos[1], i, sp_err_msg(err));
			sp_err_clear(&err);
			rc = 2;
			break;
		}
		if (repeat > 0)
			time_eval(p, kind, msg, repeat);
		if (sp_policy_eval(p, st, kind, msg, &d) < 0) {
			fprintf(stderr, "sealpod policy: %s: request %zu: kind %s has no message\n", pos[1], i, kind);
			rc = 2;
			if (msg)
				protobuf_c_message_free_unpacked(msg, NULL);
			break;
		}
		if (as_json) {
			json_t *o = json_pack("{s:s, s:b}", "kind", kind, "allowed", d.allow);
			if (!d.allow)
				json_object_set_new(o, "denial", json_pack("{s:s, s:s, s:s, s:s}", "path", d.path,
									    "expected", d.expected, "got", d.got,
									    "message", d.message));
			json_array_append_new(out, o);
		} else if (d.allow) {
			printf("allow %s\n", kind);
		} else {
			printf("deny %s\n  %s\n", kind, d.message);
		}
		if (!d.allow)
			rc = 1;
		sp_policy_decision_clear(&d);
		if (msg)
			protobuf_c_message_free_unpacked(msg, NULL);
	}
	if (as_json) {
		char *s = sp_json_dump_pretty(out);
		printf("%s\n", s);
		free(s);
	}
	json_decref(out);
	sp_policy_state_free(st);
	sp_policy_free(p);
	return rc;
}

int cmd_policy_gen(int argc, char **argv);

int cmd_policy(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "gen"))
		return cmd_policy_gen(argc - 1, argv + 1);
	if (!strcmp(sub, "explain"))
		return show_policy(argc - 1, argv + 1, print_explain);
	if (!strcmp(sub, "eval"))
		return do_eval(argc - 1, argv + 1);
	if (!strcmp(sub, "hash"))
		return show_policy(argc - 1, argv + 1, print_hash);
	if (!strcmp(sub, "spec"))
		return do_spec(argc - 1, argv + 1);
	fprintf(stderr, "sealpod policy: unknown subcommand `%s`\n", sub);
	return usage(stderr);
}

/* Image configs come from the image module: the layout is opened once;
 * a registry (given, or each reference's own) with optional credentials. */
struct resolver {
	const char *image_dir;
	const char *registry;
	sp_image_store *layout;
	struct sp_image_store_opts opts;
	const char *authfile; /* --authfile; without --username podman's files */
};

static int resolve(void *ctx, const char *ref, sp_policy_image *out, sp_err **err)
{
	struct resolver *r = ctx;
	if (r->image_dir) {
		int rc = 0;
		if (!r->layout) {
			_cleanup_free_ char *spec = sp_xasprintf("dir:%s", r->image_dir);
			rc = sp_image_store_open(&r->layout, spec, NULL, err);
		}
		if (rc == 0 && sp_policy_image_from_store(r->layout, ref, out, err) == 0)
			return 0;
		if (!r->registry)
			return (*err)->code;
		sp_err_clear(err);
	}
	if (r->opts.username)
		return sp_policy_image_from_registry(r->registry, ref, &r->opts, out, err);
	/* Credentials from an auth file, for the registry actually asked
	 * (the --registry mirror's, else the reference's own). */
	_cleanup_image_ref_ sp_image_ref *ir = NULL;
	if (sp_image_ref_parse(&ir, ref, err) < 0)
		return (*err)->code;
	if (r->registry) {
		const char *h = strstr(r->registry, "://");
		h = h ? h + 3 : r->registry;
		free(ir->registry);
		ir->registry = sp_xstrndup(h, strcspn(h, "/"));
	}
	_cleanup_free_ char *user = NULL, *pass = NULL;
	if (sp_image_auth_lookup(r->authfile, ir, &user, &pass, NULL, err) < 0)
		return sp_error_wrap(err, "credentials for %s", ir->registry);
	struct sp_image_store_opts o = r->opts;
	o.username = user;
	o.password = pass;
	return sp_policy_image_from_registry(r->registry, ref, &o, out, err);
}

int cmd_policy_gen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"image-dir", required_argument, NULL, 'd'}, {"registry", required_argument, NULL, 'r'},
		{"username", required_argument, NULL, 'u'},  {"password-file", required_argument, NULL, 'P'},
		{"ca-file", required_argument, NULL, 'c'},   {"registry-ca", required_argument, NULL, 'C'},
		{"print-hash", no_argument, NULL, 'H'},      {"output", required_argument, NULL, 'o'},
		{"in-place", no_argument, NULL, 'i'},        {"allow-host-path", required_argument, NULL, 'p'},
		{"kbs", required_argument, NULL, 'k'},       {"kbs-ca", required_argument, NULL, 'K'},
		{"authfile", required_argument, NULL, 'A'},
		{"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0},
	};
	struct resolver r = {.opts.version = SP_IMAGE_STORE_OPTS_VERSION};
	const char *pwfile = NULL, *registry_ca = NULL, *kbs_url = NULL, *kbs_ca = NULL;
	const char *output = NULL;
	bool print_hash = false, in_place = false;
	char **hostpaths = sp_xcalloc((size_t)argc + 1, sizeof(char *));
	size_t nhp = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:r:u:P:c:C:Ho:ip:k:K:A:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': r.image_dir = optarg; break;
		case 'r': r.registry = optarg; break;
		case 'u': r.opts.username = optarg; break;
		case 'P': pwfile = optarg; break;
		case 'c': r.opts.ca_file = optarg; break;
		case 'C': registry_ca = optarg; break;
		case 'H': print_hash = true; break;
		case 'o': output = optarg; break;
		case 'i': in_place = true; break;
		case 'p': hostpaths[nhp++] = optarg; break;
		case 'k': kbs_url = optarg; break;
		case 'K': kbs_ca = optarg; break;
		case 'A': r.authfile = optarg; break;
		case 'h': free(hostpaths); return usage(stdout);
		default: free(hostpaths); return usage(stderr);
		}
	}
	if (optind != argc - 1 || (output && in_place)) {
		free(hostpaths);
		return usage(stderr);
	}
	const char *file = argv[optind];
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	sp_err *err = NULL;
	if (sp_read_file(&data, &len, file, 16u << 20, &err) < 0) {
		free(hostpaths);
		return fail(err);
	}
	_cleanup_free_ uint8_t *pw = NULL;
	size_t pwlen = 0;
	if (pwfile) {
		if (sp_read_file(&pw, &pwlen, pwfile, 4096, &err) < 0) {
			free(hostpaths);
			return fail(err);
		}
		while (pwlen && (pw[pwlen - 1] == '\n' || pw[pwlen - 1] == '\r'))
			pw[--pwlen] = 0;
		r.opts.password = (const char *)pw;
	}
	/* --registry-ca: the registry uses a private CA. The policy pins it
	 * for the registry as a UVM reaches it (127.0.0.1 is 10.0.2.2 there),
	 * and this side checks the registry with it too. */
	_cleanup_json_ json_t *regs = NULL;
	if (registry_ca) {
		_cleanup_free_ char *guest = NULL;
		json_t *entry = NULL;
		if (!r.registry || strncmp(r.registry, "https://", 8) != 0)
			sp_error(&err, SP_ERR_INVALID,
				 "--registry-ca needs --registry https://HOST[:PORT]");
		else if (sp_sandbox_guest_registry(&guest, r.registry, true, &err) == 0)
			sp_policy_registry_entry(&entry, guest, registry_ca, &err);
		if (err) {
			free(hostpaths);
			return fail(err);
		}
		regs = json_array();
		json_array_append_new(regs, entry);
		if (!r.opts.ca_file)
			r.opts.ca_file = registry_ca;
	}
	/* --kbs: the key broker as the guest reaches it, written verbatim
	 * (a UVM reaches the host's 127.0.0.1 as 10.0.2.2). */
	_cleanup_json_ json_t *kbs = NULL;
	if ((kbs_url || kbs_ca) &&
	    (kbs_url ? sp_policy_kbs_entry(&kbs, kbs_url, kbs_ca, &err)
		     : sp_error(&err, SP_ERR_INVALID, "--kbs-ca needs --kbs https://HOST[:PORT]")) < 0) {
		free(hostpaths);
		return fail(err);
	}
	sp_policy_gen_opts go = {.version = 1, .resolve = resolve, .resolve_ctx = &r,
				 .allow_host_paths = hostpaths, .registries = regs, .kbs = kbs};
	_cleanup_free_ char *yaml = NULL, *hashes = NULL;
	int rc = sp_policy_generate_yaml(data, len, &go, &yaml, &hashes, &err);
	free(hostpaths);
	sp_image_store_close(r.layout);
	if (rc < 0)
		return fail(err);
	const char *dest = in_place ? file : output;
	if (dest) {
		if (sp_write_file_atomic(dest, yaml, strlen(yaml), 0644, &err) < 0)
			return fail(err);
	} else {
		fputs(yaml, stdout);
	}
	if (print_hash)
		fputs(hashes, dest ? stdout : stderr);
	return 0;
}
