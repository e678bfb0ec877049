/* SPDX-License-Identifier: Apache-2.0 */
/* The shim's pure parts: runtime configuration, the spec the guest gets,
 * shim socket addresses. The containerd contract itself is tested with a
 * real containerd (tests/integration/test_shim*.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <sys/un.h>

#include "sealpod/err.h"
#include "sealpod/json.h"
#include "sealpod/sandbox.h"
#include "../../src/shim/shim.h"

static sp_runtime_config *parse_ok(const char *text)
{
	sp_runtime_config *c = NULL;
	_cleanup_err_ sp_err *err = NULL;
	int r = sp_runtime_config_parse(&c, text, strlen(text), "t.json", &err);
	if (r < 0)
		fail_msg("parse: %s", sp_err_msg(err));
	return c;
}

static char *parse_err(const char *text)
{
	sp_runtime_config *c = NULL;
	sp_err *err = NULL;
	int r = sp_runtime_config_parse(&c, text, strlen(text), "t.json", &err);
	assert_true(r < 0);
	assert_null(c);
	assert_non_null(err);
	char *msg = sp_xstrdup(sp_err_msg(err));
	sp_err_free(err);
	return msg;
}

static void test_config_defaults_and_values(void **state)
{
	sp_runtime_config *c = parse_ok("{}");
	assert_string_equal(c->backend, "vm");
	assert_string_equal(c->tee, "sim");
	assert_int_equal(c->vcpus, 1);
	assert_null(c->image_store);
	sp_runtime_config_free(c);

	c = parse_ok("{\"backend\":\"native\",\"vcpus\":2,\"memory_mib\":1024,"
		     "\"tee\":\"none\",\"image_store\":\"/s.tar\",\"kernel_cmdline\":\"quiet\","
		     "\"_comment\":\"ignored\",\"default_policy\":null}");
	assert_string_equal(c->backend, "native");
	assert_int_equal(c->vcpus, 2);
	assert_int_equal(c->memory_mib, 1024);
	assert_string_equal(c->image_store, "/s.tar");
	assert_string_equal(c->kernel_cmdline, "quiet");
	assert_null(c->default_policy);
	assert_string_equal(c->source, "t.json");
	sp_runtime_config_free(c);
}

/* The registry as a UVM reaches it through QEMU user networking. */
static void test_guest_registry_mapping(void **state)
{
	(void)state;
	static const struct {
		const char *url;
		bool vm;
		const char *want; /* NULL: refused */
	} cases[] = {
		{"http://127.0.0.1:5000", true, "http://10.0.2.2:5000"},
		{"http://localhost:5000/", true, "http://10.0.2.2:5000"},
		{"http://127.0.0.1:5000", false, "http://127.0.0.1:5000"},
		{"http://[::1]:5000", false, "http://[::1]:5000"},
		{"http://[::1]:5000", true, NULL},
		{"https://registry.example:8443/", true, "https://registry.example:8443"},
		{"https://127.0.0.1:5443/", true, "https://10.0.2.2:5443"},
		{"https://localhost:5443", true, "https://10.0.2.2:5443"},
		{"https://127.0.0.1:5443", false, "https://127.0.0.1:5443"},
		{"https://[::1]:5443", true, NULL},
		{"https://127.0.0.1.evil:5443", true, "https://127.0.0.1.evil:5443"},
		{"https://127.0.0.1:54x", true, NULL},
		{"http://192.0.2.1:5000", true, NULL},
		{"http://127.0.0.1.evil:5000", true, NULL},
		{"http://127.0.0.1:50x", true, NULL},
		{"ftp://127.0.0.1", true, NULL},
		{"", true, NULL},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
		char *out = NULL;
		sp_err *err = NULL;
		int r = sp_sandbox_guest_registry(&out, cases[i].url, cases[i].vm, &err);
		if (cases[i].want) {
			if (r < 0)
				fail_msg("%s: %s", cases[i].url, sp_err_msg(err));
			assert_string_equal(out, cases[i].want);
		} else {
			assert_true(r < 0);
			assert_null(out);
			assert_non_null(strstr(sp_err_msg(err), cases[i].url));
		}
		free(out);
		sp_err_free(err);
	}
}

static void test_config_errors_name_the_problem(void **state)
{
	char *m = parse_err("{\"vcpu\":2}");
	assert_non_null(strstr(m, "unknown key \"vcpu\""));
	assert_non_null(strstr(m, "t.json"));
	free(m);
	m = parse_err("{\"tee\":\"sgx\"}");
	assert_non_null(strstr(m, "\"tee\" is \"sgx\""));
	free(m);
	m = parse_err("{\"vcpus\":0}");
	assert_non_null(strstr(m, "vcpus"));
	free(m);
	m = parse_err("{\"kernel\":5}");
	assert_non_null(strstr(m, "\"kernel\" must be a string"));
	free(m);
	m = parse_err("{\"backend\":null}");
	assert_non_null(strstr(m, "cannot be null"));
	free(m);
	m = parse_err("[]");
	assert_non_null(strstr(m, "JSON object"));
	free(m);
	m = parse_err("{\"log_level\":\"loud\"}");
	assert_non_null(strstr(m, "loud"));
	free(m);
}

static void test_config_load_missing_file(void **state)
{
	sp_runtime_config *c = NULL;
	_cleanup_err_ sp_err *err = NULL;
	assert_true(sp_runtime_config_load(&c, "/nonexistent/runtime.json", &err) < 0);
	assert_non_null(strstr(sp_err_msg(err), "/nonexistent/runtime.json"));
}

static void test_guest_spec_drops_host_parts(void **state)
{
	const char *host =
		"{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"/host/rootfs\",\"readonly\":true},"
		"\"hooks\":{\"prestart\":[{\"path\":\"/usr/bin/evil\"}]},"
		"\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
		"{\"destination\":\"/etc/hosts\",\"type\":\"bind\",\"source\":\"/var/lib/x/hosts\"},"
		"{\"destination\":\"/data\",\"source\":\"/srv\",\"options\":[\"rbind\",\"ro\"]}],"
		"\"annotations\":{\"io.sealpod.policy\":\"e30=\",\"keep\":\"me\"},"
		"\"linux\":{\"cgroupsPath\":\"/kubepods/x\",\"namespaces\":["
		"{\"type\":\"network\",\"path\":\"/proc/42/ns/net\"},{\"type\":\"pid\"}]}}";
	_cleanup_json_ json_t *in = NULL;
	assert_int_equal(sp_json_parse(&in, host, strlen(host), "spec", NULL), 0);
	_cleanup_json_ json_t *out = NULL;
	assert_int_equal(sp_sandbox_guest_spec(&out, in, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(out, "root"), "path")),
			    "rootfs");
	assert_true(json_is_true(json_object_get(json_object_get(out, "root"), "readonly")));
	assert_null(json_object_get(out, "hooks"));
	json_t *mounts = json_object_get(out, "mounts");
	assert_int_equal(json_array_size(mounts), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(mounts, 0), "type")),
			    "proc");
	json_t *lin = json_object_get(out, "linux");
	assert_null(json_object_get(lin, "cgroupsPath"));
	json_t *ns0 = json_array_get(json_object_get(lin, "namespaces"), 0);
	assert_string_equal(json_string_value(json_object_get(ns0, "type")), "network");
	assert_null(json_object_get(ns0, "path"));
	json_t *ann = json_object_get(out, "annotations");
	assert_null(json_object_get(ann, "io.sealpod.policy"));
	assert_non_null(json_object_get(ann, "keep"));
	/* The input is not modified. */
	assert_non_null(json_object_get(in, "hooks"));

	_cleanup_json_ json_t *arr = json_array();
	json_t *bad = NULL;
	_cleanup_err_ sp_err *err = NULL;
	assert_true(sp_sandbox_guest_spec(&bad, arr, &err) < 0);
}

static void test_socket_path(void **state)
{
	char *a = shim_socket_path("/run/containerd/containerd.sock", "k8s.io", "pod1");
	char *b = shim_socket_path("/run/containerd/containerd.sock", "k8s.io", "pod1");
	char *c = shim_socket_path("/run/containerd/containerd.sock", "k8s.io", "pod2");
	char *d = shim_socket_path("/tmp/x/c.sock", "k8s.io", "pod1");
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_true(!strncmp(a, "/run/containerd/s/", 18));
	assert_true(!strncmp(d, "/tmp/x/s/", 9));
	char longdir[200];
	memset(longdir, 'd', sizeof(longdir));
	longdir[0] = '/';
	strcpy(longdir + 150, "/c.sock");
	char *e = shim_socket_path(longdir, "default", "p");
	assert_true(strlen(e) < sizeof(((struct sockaddr_un *)0)->sun_path));
	char *f = shim_socket_path("/x/" "0123456789012345678901234567890123456789012345678901234567890123456789"
				   "01234567/c.sock", "default", "p");
	assert_true(strlen(f) < sizeof(((struct sockaddr_un *)0)->sun_path));
	free(a);
	free(b);
	free(c);
	free(d);
	free(e);
	free(f);
}

/* Which host mounts are kubelet volumes whose files the guest needs, and
 * where the policy expects them. */
static void test_volume_guest_dir(void **state)
{
	(void)state;
	static const struct {
		const char *host, *guest;
	} cases[] = {
		{"/var/lib/kubelet/pods/0f3e-11/volumes/kubernetes.io~configmap/conf",
		 "/run/sealpod/sandbox/configmap/conf"},
		{"/var/lib/kubelet/pods/u/volumes/kubernetes.io~secret/creds/",
		 "/run/sealpod/sandbox/secret/creds"},
		{"/tmp/x/pods/u/volumes/kubernetes.io~projected/kube-api-access-abcde",
		 "/run/sealpod/sandbox/projected/kube-api-access-abcde"},
		{"/data/kubelet/pods/u/volumes/kubernetes.io~downward-api/podinfo",
		 "/run/sealpod/sandbox/downwardapi/podinfo"},
		/* emptyDir: the agent makes it; nothing to copy. */
		{"/var/lib/kubelet/pods/u/volumes/kubernetes.io~empty-dir/scratch", NULL},
		/* subPath bind mounts, other plugins, odd names. */
		{"/var/lib/kubelet/pods/u/volume-subpaths/conf/web/0", NULL},
		{"/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/pvc-1/mount", NULL},
		{"/var/lib/kubelet/pods/u/volumes/kubernetes.io~configmap/..", NULL},
		{"/var/lib/kubelet/pods/u/volumes/kubernetes.io~configmap/a b", NULL},
		{"/var/lib/kubelet/pods/u/volumes/kubernetes.io~configmap/conf/key", NULL},
		{"/var/lib/kubelet/pods//volumes/kubernetes.io~configmap/conf", NULL},
		{"pods/u/volumes/kubernetes.io~configmap/conf", NULL},
		{"/etc/hosts", NULL},
		{"/", NULL},
		{"", NULL},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
		_cleanup_free_ char *g = sp_sandbox_volume_guest_dir(cases[i].host);
		if (cases[i].guest) {
			assert_non_null(g);
			assert_string_equal(g, cases[i].guest);
		} else if (g) {
			fail_msg("%s: expected no guest directory, got %s", cases[i].host, g);
		}
	}
	assert_null(sp_sandbox_volume_guest_dir(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults_and_values),
		cmocka_unit_test(test_config_errors_name_the_problem),
		cmocka_unit_test(test_guest_registry_mapping),
		cmocka_unit_test(test_config_load_missing_file),
		cmocka_unit_test(test_guest_spec_drops_host_parts),
		cmocka_unit_test(test_socket_path),
		cmocka_unit_test(test_volume_guest_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
