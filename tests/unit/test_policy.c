/* SPDX-License-Identifier: Apache-2.0 */
/* Pod policy: the allow/deny corpus in tests/policy/cases (every request
 * type and the attacks that matter), canonical loading, the runtime-spec
 * builder, and the generator's Kubernetes semantics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/bytes.h"
#include "sealpod/hash.h"
#include "sealpod/policy.h"
#include "sealpod/sealed.h"
#include "agent.pb-c.h"
#include "policy/internal.h"

static const char *root(void)
{
	const char *r = getenv("SP_SOURCE_ROOT");
	return r ? r : SP_SOURCE_ROOT;
}

static sp_policy *load_named(const char *name)
{
	_cleanup_free_ char *path = sp_xasprintf("%s/tests/policy/policies/%s", root(), name);
	_cleanup_json_ json_t *doc = NULL;
	sp_err *err = NULL;
	sp_policy *p = NULL;
	if (sp_json_load_file(&doc, path, 1u << 20, &err) < 0 || sp_policy_load_json(&p, doc, &err) < 0)
		fail_msg("%s: %s", path, sp_err_msg(err));
	return p;
}

/* The fast path (eval_container.c) against the full evaluator: it may pass
 * only specs the full check passes, and should pass most allowed ones. */
static size_t fast_allowed, create_allowed;

static int check_fast(const sp_policy *p, const char *path, size_t i, const char *desc,
		      const ProtobufCMessage *msg, const sp_policy_decision *d)
{
	const Sealpod__Agent__V1__CreateContainerRequest *r = (const void *)msg;
	int idx = p ? sp_policy_container_find(p, r->container_name) : -1;
	if (idx < 0)
		return 0;
	bool fast = sp_eval_spec_fast(&p->c[idx], r->oci_spec.data, r->oci_spec.len);
	if (d->allow) {
		create_allowed++;
		fast_allowed += fast;
	} else if (fast && d->path && !strncmp(d->path, "oci_spec", 8)) {
		print_error("FAIL %s [%zu] %s: the fast path allowed a spec the full check denies: %s\n",
			    path, i, desc, d->message);
		return 1;
	}
	return 0;
}

static int run_file(const char *path, size_t *count)
{
	_cleanup_json_ json_t *f = NULL;
	sp_err *err = NULL;
	int failures = 0;
	if (sp_json_load_file(&f, path, 4u << 20, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	const char *pname = json_string_value(json_object_get(f, "policy"));
	sp_policy *p = pname ? load_named(pname) : NULL;
	sp_policy *installed = NULL;
	sp_policy_state *st = sp_policy_state_new();
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(f, "cases"), i, c) {
		const char *desc = json_string_value(json_object_get(c, "description"));
		bool want = json_is_true(json_object_get(c, "allowed"));
		const char *kind;
		ProtobufCMessage *msg = NULL;
		sp_policy_decision d;
		const sp_policy *cur = installed ? installed : p;
		if ((cur && sp_policy_request_expand(cur, c, &err) < 0) ||
		    sp_policy_request_from_json(c, &kind, &msg, &err) < 0)
			fail_msg("%s [%zu] %s: %s", path, i, desc, sp_err_msg(err));
		assert_int_equal(sp_policy_eval(cur, st, kind, msg, &d), 0);
		(*count)++;
		const char *dp = json_string_value(json_object_get(c, "deny_path"));
		const char *nc = json_string_value(json_object_get(c, "deny_not_contains"));
		if (d.allow != want) {
			print_error("FAIL %s [%zu] %s: want %s, got %s%s%s\n", path, i, desc,
				    want ? "allow" : "deny", d.allow ? "allow" : "deny",
				    d.message ? ": " : "", d.message ? d.message : "");
			failures++;
		} else if (!d.allow && dp && !strstr(d.path, dp)) {
			print_error("FAIL %s [%zu] %s: denial path `%s` lacks `%s` (%s)\n", path, i, desc,
				    d.path, dp, d.message);
			failures++;
		} else if (!d.allow && nc && strstr(d.message, nc)) {
			print_error("FAIL %s [%zu] %s: the denial echoes `%s`: %s\n", path, i, desc, nc, d.message);
			failures++;
		}
		if (!strcmp(kind, "CreateContainerRequest") || !strcmp(kind, "CreateContainer"))
			failures += check_fast(cur, path, i, desc, msg, &d);
		/* Every denial explains itself. */
		if (!d.allow && (!d.path || !d.expected || !d.got || !strstr(d.message, "denied by policy"))) {
			print_error("FAIL %s [%zu] %s: incomplete denial\n", path, i, desc);
			failures++;
		}
		/* An allowed SetPolicy installs the new policy (as the agent does). */
		if (d.allow && !strcmp(kind, "SetPolicy")) {
			const char *b = ((Sealpod__Agent__V1__SetPolicyRequest *)msg)->policy;
			sp_policy *np = NULL;
			assert_int_equal(sp_policy_load(&np, b, strlen(b), NULL), 0);
			sp_policy_free(installed);
			installed = np;
		}
		sp_policy_decision_clear(&d);
		if (msg)
			protobuf_c_message_free_unpacked(msg, NULL);
	}
	sp_policy_state_free(st);
	sp_policy_free(p);
	sp_policy_free(installed);
	return failures;
}

static void test_case_corpus(void **state)
{
	_cleanup_free_ char *dir = sp_xasprintf("%s/tests/policy/cases", root());
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	size_t count = 0;
	int failures = 0;
	while ((de = readdir(d))) {
		if (!strstr(de->d_name, ".json"))
			continue;
		_cleanup_free_ char *path = sp_xasprintf("%s/%s", dir, de->d_name);
		failures += run_file(path, &count);
	}
	closedir(d);
	print_message("%zu policy cases; the fast path proved %zu of %zu allowed CreateContainer\n",
		      count, fast_allowed, create_allowed);
	assert_true(create_allowed >= 10 && fast_allowed * 10 >= create_allowed * 8);
	assert_true(count >= 100);
	assert_int_equal(failures, 0);
}

static void test_canonical_only(void **state)
{
	sp_policy *p = load_named("web.json");
	size_t len;
	const char *bytes = sp_policy_bytes(p, &len);
	sp_policy *q = NULL;
	sp_err *err = NULL;
	assert_int_equal(sp_policy_load(&q, bytes, len, &err), 0);
	uint8_t h1[32], h2[32];
	sp_policy_hash(q, h1);
	sp_sha256(h2, bytes, len);
	assert_memory_equal(h1, h2, 32);
	sp_policy_free(q);
	/* The same policy with a space is refused: one policy, one hash. */
	_cleanup_free_ char *spaced = sp_xasprintf(" %s", bytes);
	assert_int_equal(sp_policy_load(&q, spaced, len + 1, &err), SP_ERR_PARSE);
	assert_non_null(strstr(err->msg, "canonical"));
	sp_err_clear(&err);
	/* Unknown keys are refused, naming the key. */
	_cleanup_json_ json_t *doc = json_deep_copy(sp_policy_json(p));
	json_object_set_new(json_array_get(json_object_get(doc, "containers"), 0), "priviliged", json_true());
	assert_int_equal(sp_policy_load_json(&q, doc, &err), SP_ERR_PARSE);
	assert_non_null(strstr(err->msg, "priviliged"));
	sp_err_clear(&err);
	sp_policy_free(p);
}


/* policy.kbs: the broker's URL (and CA for https); what is refused. */
static void test_kbs(void **state)
{
	(void)state;
	sp_policy *p = load_named("registries.json");
	const char *good = sp_policy_registry_ca(p, "https://10.0.2.2:5443");
	assert_non_null(good);
	const char *ca = "x";
	assert_null(sp_policy_kbs_url(p, &ca));
	assert_null(ca);
	static const struct {
		const char *url, *ca; /* ca "G": the good CA */
		const char *extra_key;
		const char *want; /* NULL: loads */
	} cases[] = {
		{"http://10.0.2.2:8080", NULL, NULL, NULL},
		{"https://kbs.example:8443/", "G", NULL, NULL},
		{"https://kbs.example", NULL, NULL, "policy.kbs.ca"},
		{"http://10.0.2.2:8080", "G", NULL, "policy.kbs.ca"},
		{"https://kbs.example", "not a certificate", NULL, "policy.kbs.ca"},
		{"ftp://10.0.2.2", NULL, NULL, "policy.kbs.url"},
		{"http://10.0.2.2:8080/kbs/v0", NULL, NULL, "policy.kbs.url"},
		{"http://user@h", NULL, NULL, "policy.kbs.url"},
		{"http://h:0", NULL, NULL, "policy.kbs.url"},
		{"http://", NULL, NULL, "policy.kbs.url"},
		{"http://h", NULL, "token", "token"},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
		_cleanup_json_ json_t *doc = json_deep_copy(sp_policy_json(p));
		json_t *k = json_pack("{s:s}", "url", cases[i].url);
		if (cases[i].ca)
			json_object_set_new(k, "ca", json_string(strcmp(cases[i].ca, "G") ? cases[i].ca : good));
		if (cases[i].extra_key)
			json_object_set_new(k, cases[i].extra_key, json_true());
		json_object_set_new(doc, "kbs", k);
		sp_policy *q = NULL;
		sp_err *err = NULL;
		int r = sp_policy_load_json(&q, doc, &err);
		if (!cases[i].want) {
			if (r != 0)
				fail_msg("case %zu: %s", i, err->msg);
			const char *qca = NULL;
			assert_string_equal(sp_policy_kbs_url(q, &qca), cases[i].url);
			if (cases[i].ca)
				assert_string_equal(qca, good);
			else
				assert_null(qca);
			sp_policy_free(q);
			continue;
		}
		assert_int_equal(r, SP_ERR_PARSE);
		if (!strstr(err->msg, cases[i].want))
			fail_msg("case %zu: %s", i, err->msg);
		sp_err_clear(&err);
	}
	/* The generator's entry. */
	json_t *e = NULL;
	sp_err *err = NULL;
	assert_int_equal(sp_policy_kbs_entry(&e, "http://127.0.0.1:8080/", NULL, &err), 0);
	assert_string_equal(json_string_value(json_object_get(e, "url")), "http://127.0.0.1:8080");
	assert_null(json_object_get(e, "ca"));
	json_decref(e);
	assert_true(sp_policy_kbs_entry(&e, "https://h", NULL, &err) < 0);
	assert_non_null(strstr(err->msg, "--kbs-ca"));
	sp_err_clear(&err);
	assert_true(sp_policy_kbs_entry(&e, "10.0.2.2:8080", NULL, &err) < 0);
	assert_non_null(strstr(err->msg, "10.0.2.2:8080"));
	sp_err_clear(&err);
	sp_policy_free(p);
}

/* env[].sealed: what loads, what is refused, and the lookup the agent uses. */
static void test_sealed_load(void **state)
{
	(void)state;
	sp_policy *p = load_named("sealed.json");
	int web = sp_policy_container_find(p, "web");
	assert_true(web >= 0);
	const json_t *b = sp_policy_env_sealed(p, (size_t)web, "SECRET_B");
	assert_non_null(b);
	assert_true(sp_policy_sealed_listed(b, "r", "t", "c"));
	assert_false(sp_policy_sealed_listed(b, "r", "t", "a"));
	assert_null(sp_policy_env_sealed(p, (size_t)web, "PASSWORD"));
	assert_null(sp_policy_env_sealed(p, (size_t)web, "NOPE"));
	assert_null(sp_policy_env_sealed(p, 99, "SECRET_B"));
	static const struct {
		const char *sealed; /* JSON */
		bool name_pattern, no_kbs;
		const char *want;
	} cases[] = {
		{"[\"r/t/x\"]", false, true, "key broker"},
		{"[\"r/t/x\"]", true, false, "only for a rule with `name`"},
		{"[]", false, false, "1 to 64"},
		{"\"r/t/x\"", false, false, "1 to 64"},
		{"[1]", false, false, "expected a string"},
		{"[\"r/t\"]", false, false, "not a resource path"},
		{"[\"r/t/x/y\"]", false, false, "not a resource path"},
		{"[\"r/.t/x\"]", false, false, "not a resource path"},
		{"[\"r/t/x\", \"r/t/x\"]", false, false, "listed twice"},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
		_cleanup_json_ json_t *doc = json_deep_copy(sp_policy_json(p));
		if (cases[i].no_kbs)
			json_object_del(doc, "kbs");
		json_t *env = json_object_get(json_array_get(json_object_get(doc, "containers"), (size_t)web), "env");
		json_t *rule = json_pack("{s:s, s:s}", cases[i].name_pattern ? "name_pattern" : "name", "X",
					 "pattern", ".*");
		json_object_set_new(rule, "sealed", json_loads(cases[i].sealed, JSON_DECODE_ANY, NULL));
		json_array_append_new(env, rule);
		if (cases[i].no_kbs) /* the other sealed rules would fail first otherwise */
			for (size_t k = 0; k + 1 < json_array_size(env); k++)
				json_object_del(json_array_get(env, k), "sealed");
		sp_policy *q = NULL;
		sp_err *err = NULL;
		assert_int_equal(sp_policy_load_json(&q, doc, &err), SP_ERR_PARSE);
		if (!strstr(err->msg, cases[i].want) || !strstr(err->msg, "sealed"))
			fail_msg("case %zu: %s", i, err->msg);
		sp_err_clear(&err);
	}
	sp_policy_free(p);
}

/* Env patterns are bounded before regcomp: stacked and nested repetitions
 * (which glibc expands into copies: a fuzzer's `[0-9]++...+` took 2 GiB)
 * are refused with the field named; the generator's own patterns load. */
static void test_pattern_bounds(void **state)
{
	(void)state;
	sp_policy *p = load_named("sealed.json");
	int web = sp_policy_container_find(p, "web");
	assert_true(web >= 0);
	char many[200], deep[200], longp[1100];
	memcpy(many, "[0-9]", 5);
	memset(many + 5, '+', 100);
	many[105] = 0;
	size_t n = 0;
	for (int i = 0; i < 40; i++)
		deep[n++] = '(';
	deep[n++] = 'a';
	for (int i = 0; i < 40; i++)
		deep[n++] = ')';
	deep[n] = 0;
	memset(longp, 'a', 1030);
	longp[1030] = 0;
	static const char *const good[] = {
		"[a-z0-9]([-a-z0-9.]*[a-z0-9])?",
		"[A-Z_][A-Z0-9_]*_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)",
		"[]a-z0-9.:/[-]*",
		"[[:alnum:]_]{1,63}",
		"x{2,}",
		"(a|b){64}",
	};
	const struct {
		const char *pat;
		const char *want;
	} bad[] = {
		{many, "too costly"},
		{"((a{64}){64})", "too costly"},
		{"(((a+)+)+){1000}", "too costly"},
		{"a{70000}", "too costly"},
		{deep, "deeper than"},
		{longp, "longer than"},
		{"a{5}{5}{5}{5}{5}{5}", "too costly"},
		{"a{5", "bad pattern"},
		{"(a*)*\\1", "back-reference"},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(good) + SP_ARRAY_LEN(bad); i++) {
		bool ok = i < SP_ARRAY_LEN(good);
		const char *pat = ok ? good[i] : bad[i - SP_ARRAY_LEN(good)].pat;
		_cleanup_json_ json_t *doc = json_deep_copy(sp_policy_json(p));
		json_t *env = json_object_get(
			json_array_get(json_object_get(doc, "containers"), (size_t)web), "env");
		json_array_append_new(env, json_pack("{s:s, s:s}", "name", "PAT", "pattern", pat));
		sp_policy *q = NULL;
		sp_err *err = NULL;
		int r = sp_policy_load_json(&q, doc, &err);
		if (ok) {
			if (r != 0)
				fail_msg("good pattern %zu refused: %s", i, err->msg);
			sp_policy_free(q);
			continue;
		}
		assert_int_equal(r, SP_ERR_PARSE);
		if (!strstr(err->msg, bad[i - SP_ARRAY_LEN(good)].want) || !strstr(err->msg, "env["))
			fail_msg("bad pattern %zu: %s", i - SP_ARRAY_LEN(good), err->msg);
		sp_err_clear(&err);
	}
	sp_policy_free(p);
}

/* requests.sealed_files: a copy_file directory's keys marked sealed. */
static void test_sealed_files_load(void **state)
{
	(void)state;
	sp_policy *p = load_named("sealed.json");
	const char *dir = "/run/sealpod/sandbox/configmap/conf";
	_cleanup_json_ json_t *good = json_deep_copy(sp_policy_json(p));
	json_object_set_new(json_object_get(good, "requests"), "sealed_files",
			    json_pack("{s:{s:[s,s]}}", dir, "password", "r/t/a", "r/t/b"));
	sp_policy *q = NULL;
	sp_err *err = NULL;
	if (sp_policy_load_json(&q, good, &err) < 0)
		fail_msg("%s", err->msg);
	const json_t *f = sp_policy_sealed_files(q, dir);
	assert_non_null(f);
	assert_true(sp_policy_sealed_listed(json_object_get(f, "password"), "r", "t", "b"));
	assert_null(sp_policy_sealed_files(q, "/run/sealpod/sandbox/projected/kube-api-access"));
	assert_null(sp_policy_sealed_files(q, "/run/sealpod/sandbox/configmap"));
	assert_null(sp_policy_sealed_files(p, dir));
	_cleanup_free_ char *ex = sp_policy_explain(q);
	assert_non_null(strstr(ex, "sealed file /run/sealpod/sandbox/configmap/conf/password: "
				   "unsealed from the key broker, one of [\"r/t/a\",\"r/t/b\"]"));
	sp_policy_free(q);
	static const struct {
		const char *sf; /* JSON */
		bool no_kbs;
		const char *want;
	} cases[] = {
		{"{\"/run/sealpod/sandbox/configmap/conf\": {\"k\": [\"r/t/x\"]}}", true, "key broker"},
		{"[]", false, "expected an object"},
		{"{\"/run/sealpod/sandbox/secret/other\": {\"k\": [\"r/t/x\"]}}", false,
		 "not one of copy_file's directories"},
		{"{\"/run/sealpod/sandbox/configmap/conf\": {}}", false, "1 to 256 file names"},
		{"{\"/run/sealpod/sandbox/configmap/conf\": {\"..data\": [\"r/t/x\"]}}", false,
		 "not a volume key"},
		{"{\"/run/sealpod/sandbox/configmap/conf\": {\"a/b\": [\"r/t/x\"]}}", false,
		 "not a volume key"},
		{"{\"/run/sealpod/sandbox/configmap/conf\": {\".\": [\"r/t/x\"]}}", false,
		 "not a volume key"},
		{"{\"/run/sealpod/sandbox/configmap/conf\": {\"k\": []}}", false, "1 to 64"},
		{"{\"/run/sealpod/sandbox/configmap/conf\": {\"k\": [\"r/t\"]}}", false,
		 "not a resource path"},
		{"{\"/run/sealpod/sandbox/configmap/conf\": {\"k\": [\"r/t/x\", \"r/t/x\"]}}", false,
		 "listed twice"},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
		_cleanup_json_ json_t *doc = json_deep_copy(sp_policy_json(p));
		if (cases[i].no_kbs) {
			json_object_del(doc, "kbs");
			/* the env's sealed rules would fail first otherwise */
			size_t ci;
			json_t *c;
			json_array_foreach(json_object_get(doc, "containers"), ci, c) {
				size_t k;
				json_t *r;
				json_array_foreach(json_object_get(c, "env"), k, r) json_object_del(r, "sealed");
			}
		}
		json_object_set_new(json_object_get(doc, "requests"), "sealed_files",
				    json_loads(cases[i].sf, JSON_DECODE_ANY, NULL));
		q = NULL;
		assert_int_equal(sp_policy_load_json(&q, doc, &err), SP_ERR_PARSE);
		if (!strstr(err->msg, cases[i].want) || !strstr(err->msg, "sealed_files"))
			fail_msg("case %zu: %s", i, err->msg);
		sp_err_clear(&err);
	}
	sp_policy_free(p);
}

/* policy.registries: what loads, what is refused, and the CA lookup. */
static void test_registries(void **state)
{
	(void)state;
	sp_policy *p = load_named("registries.json");
	const char *ca = sp_policy_registry_ca(p, "https://10.0.2.2:5443/");
	assert_non_null(ca);
	assert_non_null(strstr(ca, "-----BEGIN CERTIFICATE-----"));
	assert_non_null(sp_policy_registry_ca(p, "https://Registry.Example"));
	assert_null(sp_policy_registry_ca(p, "http://10.0.2.2:5443"));
	assert_null(sp_policy_registry_ca(p, "https://10.0.2.2:5444"));
	assert_null(sp_policy_registry_ca(p, "https://10.0.2.2"));
	/* Each refusal names the field. */
	static const struct {
		const char *host, *ca; /* ca NULL: the good CA */
		const char *extra_key;
		const char *want;
	} bad[] = {
		{"https://10.0.2.2:5443", NULL, NULL, "registries[0].host"},
		{"10.0.2.2:5443/v2", NULL, NULL, "registries[0].host"},
		{"10.0.2.2:0", NULL, NULL, "registries[0].host"},
		{"10.0.2.2:65536", NULL, NULL, "registries[0].host"},
		{"user@host", NULL, NULL, "registries[0].host"},
		{"", NULL, NULL, "registries[0].host"},
		{"10.0.2.2:5443", "not a certificate", NULL, "registries[0].ca"},
		{"10.0.2.2:5443", "", NULL, "registries[0].ca"},
		{"10.0.2.2:5443", NULL, "insecure", "insecure"},
	};
	const char *good = ca;
	for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
		_cleanup_json_ json_t *doc = json_deep_copy(sp_policy_json(p));
		json_t *e = json_pack("{s:s, s:s}", "host", bad[i].host, "ca",
				      bad[i].ca ? bad[i].ca : good);
		if (bad[i].extra_key)
			json_object_set_new(e, bad[i].extra_key, json_true());
		json_object_set_new(doc, "registries", json_pack("[o]", e));
		sp_policy *q = NULL;
		sp_err *err = NULL;
		assert_int_equal(sp_policy_load_json(&q, doc, &err), SP_ERR_PARSE);
		if (!strstr(err->msg, bad[i].want))
			fail_msg("case %zu: %s", i, err->msg);
		sp_err_clear(&err);
	}
	/* A certificate followed by something else (a key, say) is refused. */
	_cleanup_free_ char *trail = sp_xasprintf("%s-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", good);
	/* Two entries for one host are ambiguous. */
	for (int k = 0; k < 2; k++) {
		_cleanup_json_ json_t *doc = json_deep_copy(sp_policy_json(p));
		json_object_set_new(doc, "registries",
				    k == 0 ? json_pack("[{s:s, s:s}]", "host", "h", "ca", trail)
					   : json_pack("[{s:s, s:s}, {s:s, s:s}]", "host", "h:1", "ca", good,
						       "host", "H:1", "ca", good));
		sp_policy *q = NULL;
		sp_err *err = NULL;
		assert_int_equal(sp_policy_load_json(&q, doc, &err), SP_ERR_PARSE);
		assert_non_null(strstr(err->msg, k == 0 ? "registries[0].ca" : "appears twice"));
		sp_err_clear(&err);
	}
	/* The generator's entry from a CA file. */
	char path[] = "/tmp/sp-test-ca-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(sp_write_all(fd, good, strlen(good)), 0);
	close(fd);
	json_t *entry = NULL;
	sp_err *err = NULL;
	assert_int_equal(sp_policy_registry_entry(&entry, "https://10.0.2.2:5443/", path, &err), 0);
	assert_string_equal(json_string_value(json_object_get(entry, "host")), "10.0.2.2:5443");
	assert_string_equal(json_string_value(json_object_get(entry, "ca")), good);
	json_decref(entry);
	assert_true(sp_policy_registry_entry(&entry, "http://10.0.2.2:5000", path, &err) < 0);
	assert_non_null(strstr(err->msg, "https"));
	sp_err_clear(&err);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(sp_write_all(fd, "junk\n", 5), 0);
	close(fd);
	assert_true(sp_policy_registry_entry(&entry, "https://h", path, &err) < 0);
	assert_non_null(strstr(err->msg, path));
	sp_err_clear(&err);
	unlink(path);
	sp_policy_free(p);
}

/* ---- generator ---- */

static int fake_resolve(void *ctx, const char *ref, sp_policy_image *out, sp_err **err)
{
	memset(out, 0, sizeof(*out));
	if (strstr(ref, "missing"))
		return sp_error(err, SP_ERR_NOT_FOUND, "no such image");
	out->reference = sp_xasprintf("%s@sha256:%064d", strstr(ref, "named") ? "named" : "img", 1);
	out->entrypoint = sp_xcalloc(2, sizeof(char *));
	out->entrypoint[0] = sp_xstrdup("/entry");
	out->cmd = sp_xcalloc(3, sizeof(char *));
	out->cmd[0] = sp_xstrdup("serve");
	out->cmd[1] = sp_xstrdup("--port=80");
	out->env = sp_xcalloc(3, sizeof(char *));
	out->env[0] = sp_xstrdup("PATH=/bin");
	out->env[1] = sp_xstrdup("LANG=C");
	out->working_dir = sp_xstrdup("/app");
	out->user = sp_xstrdup(strstr(ref, "named") ? "nginx" : "1000:1000");
	return 0;
}

static json_t *gen_one(const char *yaml, sp_err **err)
{
	sp_policy_gen_opts o = {.version = 1, .resolve = fake_resolve};
	_cleanup_json_ json_t *docs = NULL;
	if (sp_yaml_to_json(yaml, strlen(yaml), &docs, err) < 0)
		return NULL;
	json_t *pol = NULL;
	if (sp_policy_generate(json_array_get(docs, json_array_size(docs) - 1), NULL, &o, &pol, err) < 0)
		return NULL;
	return pol;
}

static json_t *c0(json_t *pol, size_t i)
{
	return json_array_get(json_object_get(pol, "containers"), i);
}

static char *args_str(json_t *c)
{
	return sp_json_dump_canonical(json_object_get(c, "args"));
}

static void test_gen_command_args(void **state)
{
	sp_err *err = NULL;
	const char *base = "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: x:1\n";
	/* Neither: Entrypoint + Cmd. */
	json_t *pol = gen_one(base, &err);
	assert_non_null(pol);
	_cleanup_free_ char *a1 = args_str(c0(pol, 0));
	assert_string_equal(a1, "[\"/entry\",\"serve\",\"--port=80\"]");
	assert_string_equal(json_string_value(json_object_get(c0(pol, 0), "cwd")), "/app");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(c0(pol, 0), "user"), "uid")), 1000);
	json_decref(pol);
	/* args only: Entrypoint + args. */
	_cleanup_free_ char *y2 = sp_xasprintf("%s    args: [\"x\", \"$(NOPE)\", \"$$(ESC)\"]\n", base);
	pol = gen_one(y2, &err);
	_cleanup_free_ char *a2 = args_str(c0(pol, 0));
	assert_string_equal(a2, "[\"/entry\",\"x\",\"$(NOPE)\",\"$(ESC)\"]");
	json_decref(pol);
	/* command only: the image's Cmd is dropped; $(VAR) expands from env. */
	_cleanup_free_ char *y3 = sp_xasprintf("%s    command: [\"/bin/sh\", \"-c\", \"echo $(MSG)\"]\n"
					       "    env: [{name: MSG, value: hi}]\n", base);
	pol = gen_one(y3, &err);
	_cleanup_free_ char *a3 = args_str(c0(pol, 0));
	assert_string_equal(a3, "[\"/bin/sh\",\"-c\",\"echo hi\"]");
	json_decref(pol);
	/* $(SECRET) cannot be pinned. */
	_cleanup_free_ char *y4 = sp_xasprintf("%s    command: [\"echo\", \"$(PW)\"]\n    env:\n    - name: PW\n"
					       "      valueFrom: {secretKeyRef: {name: s, key: k}}\n", base);
	assert_null(gen_one(y4, &err));
	assert_non_null(strstr(err->msg, "$(PW)"));
	sp_err_clear(&err);
}

static bool has_cap(json_t *c, const char *cap)
{
	json_t *b = json_object_get(json_object_get(c, "capabilities"), "bounding");
	size_t i;
	json_t *v;
	json_array_foreach(b, i, v) if (!strcmp(json_string_value(v), cap)) return true;
	return false;
}

/* resources.requests/limits become millicores and bytes (rounded up), a
 * limit alone is also the request, and bad quantities name the field. */
static void test_gen_resources(void **state)
{
	sp_err *err = NULL;
	json_t *pol = gen_one("kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
			      "  - name: a\n    image: x:1\n    resources:\n"
			      "      requests: {cpu: 250m, memory: 64Mi}\n      limits: {cpu: 1, memory: 1.5G}\n"
			      "  - name: b\n    image: x:1\n    resources: {limits: {cpu: '0.0005', memory: 129e6}}\n"
			      "  - name: c\n    image: x:1\n",
			      &err);
	assert_non_null(pol);
	_cleanup_free_ char *a = sp_json_dump_canonical(json_object_get(c0(pol, 0), "resources"));
	assert_non_null(strstr(a, "\"limits\":{\"cpu\":1000,\"memory\":1500000000}"));
	assert_non_null(strstr(a, "\"requests\":{\"cpu\":250,\"memory\":67108864}"));
	assert_non_null(strstr(a, "\"memory.max\""));
	assert_null(strstr(a, "cgroup."));
	_cleanup_free_ char *b = sp_json_dump_canonical(json_object_get(c0(pol, 1), "resources"));
	assert_non_null(strstr(b, "\"requests\":{\"cpu\":1,\"memory\":129000000}"));
	_cleanup_free_ char *c = sp_json_dump_canonical(json_object_get(c0(pol, 2), "resources"));
	assert_null(strstr(c, "limits"));
	sp_policy *p = NULL;
	assert_int_equal(sp_policy_load_json(&p, pol, &err), 0);
	sp_policy_free(p);
	json_decref(pol);
	assert_null(gen_one("kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
			    "  - name: a\n    image: x:1\n    resources: {limits: {memory: 12Zi}}\n", &err));
	assert_non_null(strstr(err->msg, "resources.limits.memory"));
	sp_err_clear(&err);
	/* A policy naming a cgroup.* key does not load. */
	pol = gen_one("kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: x:1\n", &err);
	json_array_append_new(json_object_get(json_object_get(c0(pol, 0), "resources"), "cgroup_keys"),
			      json_string("cgroup.procs"));
	assert_int_equal(sp_policy_load_json(&p, pol, &err), SP_ERR_PARSE);
	assert_non_null(strstr(err->msg, "cgroup.procs"));
	sp_err_clear(&err);
	json_decref(pol);
}

static void test_gen_security_context(void **state)
{
	sp_err *err = NULL;
	json_t *pol = gen_one("kind: Deployment\nmetadata: {name: d, namespace: ns}\nspec:\n  template:\n    spec:\n"
			      "      securityContext: {runAsUser: 5, runAsGroup: 6, fsGroup: 7, supplementalGroups: [8],\n"
			      "        sysctls: [{name: net.core.somaxconn, value: '1024'}], seccompProfile: {type: RuntimeDefault}}\n"
			      "      containers:\n      - name: a\n        image: x:1\n        securityContext:\n"
			      "          allowPrivilegeEscalation: false\n          readOnlyRootFilesystem: true\n"
			      "          capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}\n"
			      "        readinessProbe: {exec: {command: [cat, /ready]}}\n"
			      "      - name: b\n        image: x:1\n        securityContext: {privileged: true}\n",
			      &err);
	assert_non_null(pol);
	json_t *a = c0(pol, 0), *b = c0(pol, 1);
	assert_null(json_object_get(json_object_get(pol, "pod"), "name")); /* generated names */
	assert_string_equal(json_string_value(json_object_get(json_object_get(pol, "pod"), "namespace")), "ns");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "user"), "uid")), 5);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "user"), "gid")), 6);
	assert_int_equal(json_array_size(json_object_get(json_object_get(a, "user"), "groups")), 2);
	assert_true(json_is_true(json_object_get(a, "no_new_privileges")));
	assert_true(json_is_true(json_object_get(a, "read_only_root")));
	assert_true(has_cap(a, "CAP_NET_BIND_SERVICE"));
	assert_false(has_cap(a, "CAP_CHOWN"));
	assert_true(has_cap(c0(pol, 1), "CAP_SYS_ADMIN"));
	assert_true(json_is_true(json_object_get(b, "privileged")));
	assert_null(json_object_get(b, "masked_paths"));
	assert_non_null(json_object_get(a, "seccomp"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(a, "sysctls"), "net.core.somaxconn")), "1024");
	_cleanup_free_ char *ex = sp_json_dump_canonical(json_object_get(a, "exec"));
	assert_string_equal(ex, "[[\"cat\",\"/ready\"]]");
	/* The generated policy's spec is allowed by the evaluator. */
	sp_policy *p = NULL;
	assert_int_equal(sp_policy_load_json(&p, pol, &err), 0);
	_cleanup_json_ json_t *spec = NULL, *vals = json_pack("{s:s}", "HOSTNAME", "d-1");
	assert_int_equal(sp_policy_container_spec(p, 0, vals, &spec, &err), 0);
	char *s = sp_json_dump_canonical(spec);
	Sealpod__Agent__V1__CreateContainerRequest r = SEALPOD__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	r.container_id = "c1";
	r.container_name = "a";
	r.image = (char *)json_string_value(json_object_get(a, "image"));
	r.oci_spec.data = (uint8_t *)s;
	r.oci_spec.len = strlen(s);
	sp_policy_state *st = sp_policy_state_new();
	sp_policy_decision d;
	assert_int_equal(sp_policy_eval(p, st, "CreateContainer", &r.base, &d), 0);
	if (!d.allow)
		fail_msg("%s", d.message);
	assert_int_equal(sp_policy_state_container(st, "c1"), 0);
	free(s);
	sp_policy_state_free(st);
	sp_policy_free(p);
	json_decref(pol);
}

static void test_gen_refusals(void **state)
{
	sp_err *err = NULL;
	const char *hp = "kind: Pod\nmetadata: {name: p}\nspec:\n  volumes: [{name: h, hostPath: {path: /etc}}]\n"
			 "  containers: [{name: a, image: x}]\n";
	assert_null(gen_one(hp, &err));
	assert_non_null(strstr(err->msg, "--allow-host-path /etc"));
	sp_err_clear(&err);
	char *allow[] = {"/etc", NULL};
	sp_policy_gen_opts o = {.version = 1, .resolve = fake_resolve, .allow_host_paths = allow};
	_cleanup_json_ json_t *docs = NULL, *pol = NULL;
	assert_int_equal(sp_yaml_to_json(hp, strlen(hp), &docs, &err), 0);
	assert_int_equal(sp_policy_generate(json_array_get(docs, 0), NULL, &o, &pol, &err), 0);

	assert_null(gen_one("kind: Pod\nspec:\n  hostNetwork: true\n  containers: [{name: a, image: x}]\n", &err));
	assert_non_null(strstr(err->msg, "hostNetwork"));
	sp_err_clear(&err);
	assert_null(gen_one("kind: Pod\nspec:\n  containers: [{name: a, image: named}]\n", &err));
	assert_non_null(strstr(err->msg, "runAsUser"));
	sp_err_clear(&err);
	assert_null(gen_one("kind: Pod\nspec:\n  containers: [{name: a, image: missing}]\n", &err));
	assert_non_null(strstr(err->msg, "missing"));
	sp_err_clear(&err);
	assert_null(gen_one("kind: Pod\nspec:\n  containers: [{name: a, image: x, envFrom: [{secretRef: {name: s}}]}]\n", &err));
	assert_non_null(strstr(err->msg, "secretKeyRef"));
	sp_err_clear(&err);
	/* Objects without pods produce nothing. */
	_cleanup_json_ json_t *none = gen_one("kind: Service\nmetadata: {name: s}\n", &err);
	assert_null(none);
	assert_null(err);
}

/* Sealed values at generation: a literal is marked with the resource it
 * names; the annotation marks Secret keys; what is refused. */
static json_t *gen_kbs(const char *yaml, bool kbs, sp_err **err)
{
	_cleanup_json_ json_t *k = json_pack("{s:s}", "url", "http://10.0.2.2:8080");
	sp_policy_gen_opts o = {.version = 1, .resolve = fake_resolve, .kbs = kbs ? k : NULL};
	_cleanup_json_ json_t *docs = NULL;
	if (sp_yaml_to_json(yaml, strlen(yaml), &docs, err) < 0)
		return NULL;
	json_t *pol = NULL;
	if (sp_policy_generate(json_array_get(docs, 0), NULL, &o, &pol, err) < 0)
		return NULL;
	return pol;
}

static const json_t *env_rule(json_t *pol, const char *name)
{
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(c0(pol, 0), "env"), i, r) if (
		json_string_value(json_object_get(r, "name")) && !strcmp(json_string_value(json_object_get(r, "name")), name)) return r;
	return NULL;
}

static void test_gen_sealed(void **state)
{
	(void)state;
	sp_err *err = NULL;
	_cleanup_free_ char *sv = NULL;
	assert_int_equal(sp_sealed_seal_vault(&sv, "kbs:///r/t/a", NULL, NULL, &err), 0);
#define SEALED_TMPL "kind: Pod\nmetadata:\n  name: p\n  annotations: {io.sealpod.policy/sealed: '%s'}\n" \
			   "spec:\n  containers:\n  - name: a\n    image: x:1\n    env:\n" \
			   "    - {name: LIT, value: \"%s\"}\n" \
			   "    - {name: SEC, valueFrom: {secretKeyRef: {name: s, key: k}}}\n"
	_cleanup_free_ char *y1 = sp_xasprintf(SEALED_TMPL, "{\"a\": {\"SEC\": [\"r/t/b\"]}}", sv);
	_cleanup_json_ json_t *pol = gen_kbs(y1, true, &err);
	if (!pol)
		fail_msg("%s", err->msg);
	_cleanup_free_ char *lit = sp_json_dump_canonical(json_object_get(env_rule(pol, "LIT"), "sealed"));
	assert_string_equal(lit, "[\"r/t/a\"]");
	assert_string_equal(json_string_value(json_object_get(env_rule(pol, "LIT"), "value")), sv);
	_cleanup_free_ char *sec = sp_json_dump_canonical(json_object_get(env_rule(pol, "SEC"), "sealed"));
	assert_string_equal(sec, "[\"r/t/b\"]");
	assert_null(json_object_get(env_rule(pol, "HOSTNAME"), "sealed"));
	static const struct {
		const char *ann, *lit; /* lit NULL: the sealed value */
		bool kbs;
		const char *want;
	} bad[] = {
		{"{}", NULL, false, "--kbs"},
		{"{\"a\": {\"SEC\": [\"r/t/b\"]}}", "sealed.x.y.z", true, "sealed secret"},
		{"{\"a\": {\"LIT\": [\"r/t/b\"]}}", NULL, true, "does not list"},
		{"{\"a\": {\"NOPE\": [\"r/t/b\"]}}", NULL, true, "no env variable NOPE"},
		{"{\"b\": {\"SEC\": [\"r/t/b\"]}}", NULL, true, "no container b"},
		{"{\"a\": {\"SEC\": []}}", NULL, true, "non-empty array"},
		{"{\"a\": {\"SEC\": [\"r/t\"]}}", NULL, true, "resource path"},
		{"[1]", NULL, true, "expected a JSON object"},
		{"{\"a\": {\"LIT\": [\"r/t/b\"]}}", "plain", true, "not a sealed secret"},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
		_cleanup_free_ char *y = sp_xasprintf(SEALED_TMPL, bad[i].ann, bad[i].lit ? bad[i].lit : sv);
		json_t *p = gen_kbs(y, bad[i].kbs, &err);
		if (p || !err || !strstr(err->msg, bad[i].want))
			fail_msg("case %zu: %s", i, err ? err->msg : "generated");
		sp_err_clear(&err);
	}
}

/* The annotation io.sealpod.policy/sealed-files marks Secret volume keys. */
static void test_gen_sealed_files(void **state)
{
	(void)state;
	sp_err *err = NULL;
#define SEALED_FILES_TMPL "kind: Pod\nmetadata:\n  name: p\n  annotations: {io.sealpod.policy/sealed-files: '%s'}\n" \
			  "spec:\n  volumes:\n  - {name: creds, secret: {secretName: s}}\n" \
			  "  - {name: conf, configMap: {name: c}}\n" \
			  "  containers:\n  - name: a\n    image: x:1\n" \
			  "    volumeMounts: [{name: creds, mountPath: /c}, {name: conf, mountPath: /d}]\n"
	_cleanup_free_ char *y1 = sp_xasprintf(SEALED_FILES_TMPL, "{\"creds\": {\"password\": [\"r/t/a\"]}}");
	_cleanup_json_ json_t *pol = gen_kbs(y1, true, &err);
	if (!pol)
		fail_msg("%s", err->msg);
	_cleanup_free_ char *sf = sp_json_dump_canonical(
		json_object_get(json_object_get(pol, "requests"), "sealed_files"));
	assert_string_equal(sf, "{\"/run/sealpod/sandbox/secret/creds\":{\"password\":[\"r/t/a\"]}}");
	static const struct {
		const char *ann;
		bool kbs;
		const char *want;
	} bad[] = {
		{"{\"creds\": {\"password\": [\"r/t/a\"]}}", false, "--kbs"},
		{"{\"conf\": {\"k\": [\"r/t/a\"]}}", true, "not a secret or projected volume"},
		{"{\"nope\": {\"k\": [\"r/t/a\"]}}", true, "not a secret or projected volume"},
		{"{\"creds\": {}}", true, "expected an object"},
		{"[1]", true, "expected a JSON object"},
		{"{\"creds\": {\"..data\": [\"r/t/a\"]}}", true, "not a volume key"},
		{"{\"creds\": {\"k\": [\"r/t\"]}}", true, "resource path"},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
		_cleanup_free_ char *y = sp_xasprintf(SEALED_FILES_TMPL, bad[i].ann);
		json_t *p = gen_kbs(y, bad[i].kbs, &err);
		if (p || !err || !strstr(err->msg, bad[i].want))
			fail_msg("case %zu: %s", i, err ? err->msg : "generated");
		sp_err_clear(&err);
	}
}

static void test_gen_yaml_roundtrip(void **state)
{
	const char *y = "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: cj\nspec:\n  schedule: \"* * * * *\"\n"
			"  jobTemplate:\n    spec:\n      template:\n        metadata:\n          annotations:\n"
			"        spec:\n          containers:\n          - name: a\n            image: x:1\n"
			"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n";
	sp_policy_gen_opts o = {.version = 1, .resolve = fake_resolve};
	char *out = NULL, *hashes = NULL;
	sp_err *err = NULL;
	if (sp_policy_generate_yaml(y, strlen(y), &o, &out, &hashes, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	_cleanup_json_ json_t *docs = NULL;
	assert_int_equal(sp_yaml_to_json(out, strlen(out), &docs, &err), 0);
	assert_int_equal(json_array_size(docs), 2);
	json_t *ann = json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(
		json_object_get(json_object_get(json_array_get(docs, 0), "spec"), "jobTemplate"), "spec"), "template"),
		"metadata"), "annotations"), SP_POLICY_ANNOTATION);
	assert_true(json_is_string(ann));
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(docs, 0), "spec"), "schedule")),
			    "* * * * *");
	uint8_t *pb = NULL;
	size_t pl = 0;
	assert_int_equal(sp_base64_decode(&pb, &pl, json_string_value(ann), json_string_length(ann), SP_B64_STD, &err), 0);
	sp_policy *p = NULL;
	assert_int_equal(sp_policy_load(&p, pb, pl, &err), 0);
	uint8_t h[32];
	char hex[65];
	sp_policy_hash(p, h);
	sp_hex_encode(hex, h, 32);
	assert_non_null(strstr(hashes, hex));
	assert_non_null(strstr(hashes, "CronJob/cj"));
	/* Generating again over the output replaces the annotation. */
	char *out2 = NULL, *h2 = NULL;
	assert_int_equal(sp_policy_generate_yaml(out, strlen(out), &o, &out2, &h2, &err), 0);
	assert_string_equal(out, out2);
	sp_policy_free(p);
	free(pb);
	free(out);
	free(out2);
	free(hashes);
	free(h2);
}

static void test_yaml_limits(void **state)
{
	/* An alias bomb is refused instead of expanded. */
	sp_buf b = SP_BUF_INIT;
	sp_buf_printf(&b, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 12; i++)
		sp_buf_printf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i,
			      i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
	json_t *j = NULL;
	sp_err *err = NULL;
	assert_int_equal(sp_yaml_to_json(b.data, b.len, &j, &err), SP_ERR_LIMIT);
	sp_err_clear(&err);
	sp_buf_free(&b);
}

/* ---- the whole-spec mutation test (issues 19 and 20) ----
 * From a valid CreateContainer spec (and an ExecProcess process), every
 * field of the OCI runtime spec, walked from a JSON schema of it
 * (tests/policy/oci-runtime-spec.schema.json, not a hand list), is in
 * turn removed, changed (another value, then null) and duplicated (the
 * key twice in the JSON text; an array element twice); fields the spec
 * lacks are added (once and twice). Every mutation must be refused
 * unless its field is one of the documented runtime-variable ones. */

struct mseg {
	const char *key; /* NULL: an array index */
	size_t idx;
};

struct mut {
	const sp_policy *p;
	int ci;		     /* policy container */
	bool exec;
	const char *const *variable;
	json_t *base;	     /* the valid spec, or process */
	sp_policy_state *st; /* exec: a state where the container exists */
	struct mseg path[32];
	size_t depth;
	size_t tried, refused, var_allowed, n_exec;
	int failures;
	/* coverage the issues ask for */
	size_t devices, umask, mount_options;
};

static char *mpath(const struct mut *m, const char *last)
{
	char buf[512];
	size_t n = 0;
	buf[0] = 0;
	if (m->exec)
		n += (size_t)snprintf(buf, sizeof(buf), "process");
	for (size_t i = 0; i < m->depth && n < sizeof(buf); i++) {
		const struct mseg *s = &m->path[i];
		if (s->key)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? "." : "", s->key);
		else
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "[%zu]", s->idx);
	}
	if (last && n < sizeof(buf))
		snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? "." : "", last);
	return sp_xstrdup(buf);
}

static bool mvariable(const struct mut *m, const char *path)
{
	for (const char *const *v = m->variable; *v; v++) {
		size_t l = strlen(*v);
		if (!strncmp(path, *v, l) && (!path[l] || path[l] == '.' || path[l] == '['))
			return true;
	}
	return false;
}

/* The node at the first `depth` segments of the path in a copy. */
static json_t *mlocate(json_t *root, const struct mut *m, size_t depth)
{
	json_t *n = root;
	for (size_t i = 0; n && i < depth; i++)
		n = m->path[i].key ? json_object_get(n, m->path[i].key) : json_array_get(n, m->path[i].idx);
	return n;
}

static bool mdecide(struct mut *m, const char *bytes)
{
	sp_policy_decision d;
	const json_t *entry = json_array_get(json_object_get(sp_policy_json(m->p), "containers"), (size_t)m->ci);
	bool allow;
	if (!m->exec) {
		Sealpod__Agent__V1__CreateContainerRequest r = SEALPOD__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
		r.container_id = "m1";
		r.container_name = (char *)json_string_value(json_object_get(entry, "name"));
		r.image = (char *)json_string_value(json_object_get(entry, "image"));
		r.container_type = json_is_true(json_object_get(entry, "init")) ? "init" : "";
		r.oci_spec.data = (uint8_t *)bytes;
		r.oci_spec.len = strlen(bytes);
		sp_policy_state *st = m->st ? m->st : sp_policy_state_new();
		assert_int_equal(sp_policy_eval(m->p, st, "CreateContainer", &r.base, &d), 0);
		if (st != m->st)
			sp_policy_state_free(st);
	} else {
		Sealpod__Agent__V1__ExecProcessRequest r = SEALPOD__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
		_cleanup_free_ char *eid = sp_xasprintf("x%zu", m->n_exec++);
		r.container_id = "m1";
		r.exec_id = eid;
		r.process.data = (uint8_t *)bytes;
		r.process.len = strlen(bytes);
		assert_int_equal(sp_policy_eval(m->p, m->st, "ExecProcess", &r.base, &d), 0);
	}
	allow = d.allow;
	/* A denial explains itself. */
	if (!allow && (!d.path || !d.expected || !d.got))
		m->failures++;
	sp_policy_decision_clear(&d);
	return allow;
}

/* Evaluates one mutated tree; dup_key: the placeholder "\u0001dup" in
 * the text becomes that key (a duplicate). */
static void mtry(struct mut *m, json_t *tree, const char *dup_key, const char *field, const char *what)
{
	_cleanup_free_ char *s = sp_json_dump_canonical(tree);
	if (dup_key) {
		const char *ph = "\"\\u0001dup\"";
		char *at = strstr(s, ph);
		assert_non_null(at);
		char *t = sp_xasprintf("%.*s\"%s\"%s", (int)(at - s), s, dup_key, at + strlen(ph));
		free(s);
		s = t;
	}
	json_decref(tree);
	bool allowed = mdecide(m, s);
	m->tried++;
	if (!allowed) {
		m->refused++;
	} else if (mvariable(m, field)) {
		m->var_allowed++;
		if (getenv("SP_MUTATION_VERBOSE"))
			print_message("allowed (runtime-variable): %s %s\n", what, field);
	} else {
		print_error("MUTATION ALLOWED: %s %s (%s)\n", what, field, m->exec ? "ExecProcess" : "CreateContainer");
		m->failures++;
	}
	if (!strcmp(field, "linux.resources.devices") || !strncmp(field, "linux.resources.devices[", 24))
		m->devices++;
	if (strstr(field, "user.umask"))
		m->umask++;
	if (!strncmp(field, "mounts[", 7) && strstr(field, "].options"))
		m->mount_options++;
}

static json_t *typical(const json_t *schema)
{
	const char *t = json_string_value(json_object_get(schema, "type"));
	if (!strcmp(t, "string"))
		return json_string("x");
	if (!strcmp(t, "integer"))
		return json_integer(1);
	if (!strcmp(t, "boolean"))
		return json_true();
	if (!strcmp(t, "array"))
		return json_pack("[o]", typical(json_object_get(schema, "items")));
	return json_object();
}

static json_t *changed(const json_t *v, const json_t *schema)
{
	switch (json_typeof(v)) {
	case JSON_STRING: return json_sprintf("%sx", json_string_value(v));
	case JSON_INTEGER: return json_integer(json_integer_value(v) + 1);
	case JSON_TRUE: return json_false();
	case JSON_FALSE: return json_true();
	case JSON_ARRAY: {
		json_t *a = json_deep_copy(v);
		json_array_append_new(a, typical(json_object_get(schema, "items")));
		return a;
	}
	case JSON_OBJECT: {
		json_t *o = json_deep_copy(v);
		json_object_set_new(o, "x-sealpod-mutation", json_integer(1));
		return o;
	}
	default: return json_string("x");
	}
}

static void mwalk(struct mut *m, const json_t *schema, const json_t *node);

/* Field k (schema sub) of the object at the current path. */
static void mfield(struct mut *m, const char *k, const json_t *sub, const json_t *v)
{
	_cleanup_free_ char *f = mpath(m, k);
	json_t *t;
	if (v) {
		t = json_deep_copy(m->base);
		json_object_del(mlocate(t, m, m->depth), k);
		mtry(m, t, NULL, f, "remove");
		t = json_deep_copy(m->base);
		json_object_set_new(mlocate(t, m, m->depth), k, changed(v, sub));
		mtry(m, t, NULL, f, "change");
		t = json_deep_copy(m->base);
		json_object_set_new(mlocate(t, m, m->depth), k, json_null());
		mtry(m, t, NULL, f, "change to null");
		t = json_deep_copy(m->base);
		json_object_set_new(mlocate(t, m, m->depth), "\x01" "dup", json_deep_copy(v));
		mtry(m, t, k, f, "duplicate key");
		if (json_is_object(v) || json_is_array(v)) {
			m->path[m->depth++] = (struct mseg){.key = k};
			mwalk(m, sub, v);
			m->depth--;
		}
	} else {
		t = json_deep_copy(m->base);
		json_object_set_new(mlocate(t, m, m->depth), k, typical(sub));
		mtry(m, t, NULL, f, "add");
		t = json_deep_copy(m->base);
		json_object_set_new(mlocate(t, m, m->depth), k, typical(sub));
		json_object_set_new(mlocate(t, m, m->depth), "\x01" "dup", typical(sub));
		mtry(m, t, k, f, "add twice");
	}
}

static void mwalk(struct mut *m, const json_t *schema, const json_t *node)
{
	assert_true(m->depth < 30);
	if (json_is_object(node)) {
		const json_t *props = json_object_get(schema, "properties");
		const json_t *addl = json_object_get(schema, "additionalProperties");
		const char *k;
		json_t *sub;
		json_object_foreach((json_t *)props, k, sub) mfield(m, k, sub, json_object_get(node, k));
		if (json_is_object(addl)) {
			json_t *v;
			json_object_foreach((json_t *)node, k, v) mfield(m, k, addl, v);
			mfield(m, "x.sealpod-mutation", addl, NULL);
		}
		return;
	}
	if (!json_is_array(node))
		return;
	const json_t *items = json_object_get(schema, "items");
	size_t i;
	json_t *v;
	json_array_foreach(node, i, v) {
		m->path[m->depth++] = (struct mseg){.idx = i};
		_cleanup_free_ char *f = mpath(m, NULL);
		m->depth--;
		json_t *t = json_deep_copy(m->base);
		json_array_remove(mlocate(t, m, m->depth), i);
		mtry(m, t, NULL, f, "remove element");
		t = json_deep_copy(m->base);
		json_array_insert_new(mlocate(t, m, m->depth), i, json_deep_copy(v));
		mtry(m, t, NULL, f, "duplicate element");
		t = json_deep_copy(m->base);
		json_array_set_new(mlocate(t, m, m->depth), i, changed(v, items));
		mtry(m, t, NULL, f, "change element");
		if (json_is_object(v) || json_is_array(v)) {
			m->path[m->depth++] = (struct mseg){.idx = i};
			mwalk(m, items, v);
			m->depth--;
		}
	}
	_cleanup_free_ char *f = mpath(m, NULL);
	json_t *t = json_deep_copy(m->base);
	json_array_append_new(mlocate(t, m, m->depth), typical(items));
	mtry(m, t, NULL, f, "add element");
}

static void mutate_container(const sp_policy *p, const json_t *schema, const char *name,
			     const char *values_json, bool exec, size_t *tried, size_t *refused)
{
	struct mut m = {.p = p, .ci = sp_policy_container_find(p, name), .exec = exec};
	assert_true(m.ci >= 0);
	_cleanup_json_ json_t *values = json_loads(values_json, 0, NULL);
	_cleanup_json_ json_t *spec = NULL;
	assert_int_equal(sp_policy_container_spec(p, (size_t)m.ci, values, &spec, NULL), 0);
	_cleanup_free_ char *valid = sp_json_dump_canonical(spec);
	if (!exec) {
		m.variable = sp_policy_variable_fields;
		m.base = spec;
		assert_true(mdecide(&m, valid)); /* the unmutated spec is allowed */
		mwalk(&m, schema, spec);
		print_message("CreateContainer %s: %zu mutations tried, %zu refused, %zu allowed (runtime-variable fields)\n",
			      name, m.tried, m.refused, m.var_allowed);
		/* Issue 20's fields: the device rules, the umask (added) and
		 * every mount's options. */
		assert_true(m.devices > 0 && m.umask > 0);
		assert_true(m.mount_options >= 4 * json_array_size(json_object_get(spec, "mounts")));
	} else {
		m.variable = sp_policy_exec_variable_fields;
		m.st = sp_policy_state_new();
		m.exec = false;
		assert_true(mdecide(&m, valid)); /* creates container m1 */
		m.exec = true;
		const json_t *entry = json_array_get(json_object_get(sp_policy_json(p), "containers"), (size_t)m.ci);
		m.base = json_deep_copy(json_object_get(spec, "process"));
		json_object_set(m.base, "args", json_array_get(json_object_get(entry, "exec"), 0));
		_cleanup_free_ char *proc = sp_json_dump_canonical(m.base);
		assert_true(mdecide(&m, proc));
		mwalk(&m, json_object_get(json_object_get(schema, "properties"), "process"), m.base);
		print_message("ExecProcess %s: %zu mutations tried, %zu refused, %zu allowed (runtime-variable fields)\n",
			      name, m.tried, m.refused, m.var_allowed);
		assert_true(m.umask > 0);
		json_decref(m.base);
		sp_policy_state_free(m.st);
	}
	assert_int_equal(m.failures, 0);
	*tried += m.tried;
	*refused += m.refused;
}

static void test_spec_mutations(void **state)
{
	_cleanup_free_ char *sp = sp_xasprintf("%s/tests/policy/oci-runtime-spec.schema.json", root());
	_cleanup_json_ json_t *schema = NULL;
	sp_err *err = NULL;
	if (sp_json_load_file(&schema, sp, 1u << 20, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	sp_policy *p = load_named("web.json");
	size_t tried = 0, refused = 0;
	mutate_container(p, schema, "tools", "{\"HOSTNAME\":\"web\"}", false, &tried, &refused);
	mutate_container(p, schema, "web", "{\"HOSTNAME\":\"web\",\"PASSWORD\":\"s3cret\",\"POD_IP\":\"10.0.0.5\"}",
			 false, &tried, &refused);
	mutate_container(p, schema, "tools", "{\"HOSTNAME\":\"web\"}", true, &tried, &refused);
	print_message("whole-spec mutation test: %zu mutations tried, %zu refused\n", tried, refused);
	assert_true(tried > 1000);
	sp_policy_free(p);
}

/* Deciding changes nothing; the caller commits what succeeded. A removal
 * keeps the id taken until the caller forgets it; exec ids are forgotten
 * one by one (the record stays bounded). */
static void test_state_decide_commit(void **state)
{
	sp_err *err = NULL;
	json_t *pol = gen_one("kind: Pod\nmetadata: {name: p, namespace: ns}\nspec:\n  containers:\n"
			      "  - name: a\n    image: x:1\n    readinessProbe: {exec: {command: [cat, /ready]}}\n",
			      &err);
	assert_non_null(pol);
	sp_policy *p = NULL;
	assert_int_equal(sp_policy_load_json(&p, pol, &err), 0);
	_cleanup_json_ json_t *spec = NULL, *vals = json_pack("{s:s}", "HOSTNAME", "p");
	assert_int_equal(sp_policy_container_spec(p, 0, vals, &spec, &err), 0);
	_cleanup_free_ char *s = sp_json_dump_canonical(spec);
	Sealpod__Agent__V1__CreateContainerRequest cr = SEALPOD__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	cr.container_id = "c1";
	cr.container_name = "a";
	cr.image = (char *)json_string_value(json_object_get(c0(pol, 0), "image"));
	cr.oci_spec.data = (uint8_t *)s;
	cr.oci_spec.len = strlen(s);
	sp_policy_state *st = sp_policy_state_new();
	sp_policy_decision d;
	sp_policy_change *ch = NULL, *ch2 = NULL;

	/* Decided twice while nothing is committed: both allowed, the state
	 * is untouched until a commit; the second commit finds the id taken. */
	assert_int_equal(sp_policy_decide(p, st, "CreateContainer", &cr.base, &d, &ch), 0);
	if (!d.allow)
		fail_msg("%s", d.message);
	assert_non_null(ch);
	assert_int_equal(sp_policy_state_container(st, "c1"), -1);
	assert_int_equal(sp_policy_decide(p, st, "CreateContainer", &cr.base, &d, &ch2), 0);
	assert_true(d.allow);
	assert_int_equal(sp_policy_state_commit(st, ch), 0);
	assert_int_equal(sp_policy_state_container(st, "c1"), 0);
	assert_int_equal(sp_policy_state_commit(st, ch2), -EEXIST);
	/* Now the id is taken: a new CreateContainer is denied. */
	assert_int_equal(sp_policy_decide(p, st, "CreateContainer", &cr.base, &d, &ch), 0);
	assert_false(d.allow);
	assert_null(ch);
	sp_policy_decision_clear(&d);

	/* A dropped change (the request failed) leaves no trace. */
	json_t *proc = json_deep_copy(json_object_get(spec, "process"));
	json_object_set_new(proc, "args", json_pack("[s,s]", "cat", "/ready"));
	_cleanup_free_ char *ps = sp_json_dump_canonical(proc);
	json_decref(proc);
	Sealpod__Agent__V1__ExecProcessRequest xr = SEALPOD__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
	xr.container_id = "c1";
	xr.exec_id = "e1";
	xr.process.data = (uint8_t *)ps;
	xr.process.len = strlen(ps);
	assert_int_equal(sp_policy_decide(p, st, "ExecProcess", &xr.base, &d, &ch), 0);
	if (!d.allow)
		fail_msg("%s", d.message);
	sp_policy_change_free(ch);
	assert_int_equal(sp_policy_state_execs(st, "c1"), 0);
	Sealpod__Agent__V1__WaitProcessRequest wr = SEALPOD__AGENT__V1__WAIT_PROCESS_REQUEST__INIT;
	wr.container_id = "c1";
	wr.exec_id = "e1";
	assert_int_equal(sp_policy_decide(p, st, "WaitProcess", &wr.base, &d, &ch), 0);
	assert_false(d.allow);
	sp_policy_decision_clear(&d);
	/* Many execs, each forgotten when it ends: the record stays small. */
	for (int i = 0; i < 1000; i++) {
		char eid[16];
		snprintf(eid, sizeof(eid), "e%d", i);
		xr.exec_id = eid;
		assert_int_equal(sp_policy_decide(p, st, "ExecProcess", &xr.base, &d, &ch), 0);
		assert_true(d.allow);
		assert_int_equal(sp_policy_state_commit(st, ch), 0);
		wr.exec_id = eid;
		assert_int_equal(sp_policy_decide(p, st, "WaitProcess", &wr.base, &d, &ch), 0);
		assert_true(d.allow);
		sp_policy_state_forget_exec(st, "c1", eid);
	}
	assert_int_equal(sp_policy_state_execs(st, "c1"), 0);

	/* RemoveContainer is allowed but forgets nothing: the id stays taken
	 * until the remover forgets it, after the removal finished. */
	Sealpod__Agent__V1__RemoveContainerRequest rr = SEALPOD__AGENT__V1__REMOVE_CONTAINER_REQUEST__INIT;
	rr.container_id = "c1";
	assert_int_equal(sp_policy_decide(p, st, "RemoveContainer", &rr.base, &d, &ch), 0);
	assert_true(d.allow);
	assert_null(ch);
	assert_int_equal(sp_policy_state_container(st, "c1"), 0);
	assert_int_equal(sp_policy_decide(p, st, "CreateContainer", &cr.base, &d, &ch), 0);
	assert_false(d.allow);
	sp_policy_decision_clear(&d);
	sp_policy_state_forget(st, "c1");
	assert_int_equal(sp_policy_decide(p, st, "CreateContainer", &cr.base, &d, &ch), 0);
	assert_true(d.allow);
	sp_policy_change_free(ch);
	/* sp_policy_eval acts at once: its RemoveContainer forgets. */
	assert_int_equal(sp_policy_eval(p, st, "CreateContainer", &cr.base, &d), 0);
	assert_true(d.allow);
	assert_int_equal(sp_policy_eval(p, st, "RemoveContainer", &rr.base, &d), 0);
	assert_true(d.allow);
	assert_int_equal(sp_policy_state_container(st, "c1"), -1);
	sp_policy_state_free(st);
	sp_policy_free(p);
	json_decref(pol);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_case_corpus),
		cmocka_unit_test(test_spec_mutations),
		cmocka_unit_test(test_canonical_only),
		cmocka_unit_test(test_registries),
		cmocka_unit_test(test_pattern_bounds),
		cmocka_unit_test(test_kbs),
		cmocka_unit_test(test_sealed_load),
		cmocka_unit_test(test_sealed_files_load),
		cmocka_unit_test(test_gen_command_args),
		cmocka_unit_test(test_gen_security_context),
		cmocka_unit_test(test_gen_resources),
		cmocka_unit_test(test_gen_refusals),
		cmocka_unit_test(test_gen_sealed),
		cmocka_unit_test(test_gen_sealed_files),
		cmocka_unit_test(test_state_decide_commit),
		cmocka_unit_test(test_gen_yaml_roundtrip),
		cmocka_unit_test(test_yaml_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
