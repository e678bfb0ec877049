/* SPDX-License-Identifier: Apache-2.0 */
/* The OCI spec parser and the pure helpers of the container engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "oci/oci-internal.h"

static struct oci_spec *parse_ok(const char *json)
{
	struct oci_spec *s = NULL;
	_cleanup_err_ sp_err *e = NULL;
	if (oci_spec_parse(&s, json, strlen(json), &e) < 0)
		fail_msg("parse failed: %s", sp_err_msg(e));
	return s;
}

/* The error message of a failing parse must contain `field`. */
static void parse_fails(const char *json, const char *field)
{
	struct oci_spec *s = NULL;
	_cleanup_err_ sp_err *e = NULL;
	assert_true(oci_spec_parse(&s, json, strlen(json), &e) < 0);
	assert_null(s);
	if (!strstr(sp_err_msg(e), field))
		fail_msg("error `%s` does not name `%s`", sp_err_msg(e), field);
}

static void test_parse_full_spec(void **state)
{
	struct oci_spec *s = parse_ok(
		"{\"ociVersion\":\"1.1.0\",\"root\":{\"path\":\"rootfs\",\"readonly\":true},"
		"\"hostname\":\"h\",\"process\":{\"args\":[\"sh\"],\"env\":[\"A=b\"],\"cwd\":\"/w\","
		"\"user\":{\"uid\":5,\"gid\":6,\"umask\":18,\"additionalGids\":[7]},"
		"\"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_KILL\"]},"
		"\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":10,\"hard\":20}],\"oomScoreAdj\":-5},"
		"\"mounts\":[{\"destination\":\"/m\",\"type\":\"tmpfs\",\"source\":\"t\","
		"\"options\":[\"ro\",\"nosuid\",\"size=1m\",\"rshared\",\"mode=700\"]},"
		"{\"destination\":\"/b\",\"source\":\"/src\",\"options\":[\"rbind\",\"rw\"]}],"
		"\"linux\":{\"namespaces\":[{\"type\":\"uts\"},{\"type\":\"network\",\"path\":\"/proc/1/ns/net\"}],"
		"\"resources\":{\"memory\":{\"limit\":1048576},\"pids\":{\"limit\":9}},"
		"\"cgroupsPath\":\"/x/y\",\"sysctl\":{\"net.ipv4.ip_forward\":\"1\"}}}");
	assert_true(s->root_readonly);
	assert_string_equal(s->process.args[0], "sh");
	assert_int_equal(s->process.uid, 5);
	assert_int_equal(s->process.gids[0], 7);
	assert_int_equal(s->process.umask, 18);
	assert_int_equal(s->process.caps.bounding, (1ULL << 0) | (1ULL << 5));
	assert_int_equal(s->process.rlimits[0].resource, RLIMIT_NOFILE);
	assert_int_equal(s->n_mounts, 2);
	assert_int_equal(s->mounts[0].flags, MS_RDONLY | MS_NOSUID);
	assert_string_equal(s->mounts[0].data, "size=1m,mode=700");
	assert_int_equal(s->mounts[0].propagation[0], MS_SHARED | MS_REC);
	assert_true(s->mounts[1].bind && s->mounts[1].rec);
	assert_int_equal(s->mounts[1].clear, MS_RDONLY);
	assert_true(oci_spec_has_ns(s, CLONE_NEWUTS, NULL));
	const char *p = NULL;
	assert_true(oci_spec_has_ns(s, CLONE_NEWNET, &p));
	assert_string_equal(p, "/proc/1/ns/net");
	assert_int_equal(s->res.mem_limit, 1048576);
	assert_int_equal(s->res.pids_limit, 9);
	assert_int_equal(s->res.cpu_shares, OCI_UNSET);
	assert_string_equal(s->sysctls[0].key, "net.ipv4.ip_forward");
	oci_spec_free(s);
}

static void test_errors_name_the_path(void **state)
{
	parse_fails("{\"ociVersion\":\"2.0.0\"}", "ociVersion");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"process\":{\"cwd\":\"/\"}}", "process.args");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"process\":{\"args\":[\"a\"],\"cwd\":\"rel\"}}",
		    "process.cwd");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"mounts\":[{\"destination\":\"/a\",\"type\":\"tmpfs\"},"
		    "{\"destination\":\"x\",\"type\":\"tmpfs\"}]}",
		    "mounts[1].destination");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"mounts\":[{\"destination\":\"/a\",\"type\":\"tmpfs\","
		    "\"options\":[\"idmap\"]}]}",
		    "mounts[0].options[0]");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"pid\"}]}}",
		    "linux.namespaces[1].type");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"linux\":{\"namespaces\":[{\"type\":\"user\"}]}}",
		    "linux.uidMappings");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"hostname\":\"x\"}", "hostname");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"process\":{\"args\":[\"a\"],\"capabilities\":"
		    "{\"effective\":[\"CAP_NOPE\"]}}}",
		    "process.capabilities.effective[0]");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"process\":{\"args\":[\"a\"],\"rlimits\":"
		    "[{\"type\":\"RLIMIT_X\",\"soft\":1,\"hard\":1}]}}",
		    "process.rlimits[0].type");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"linux\":{\"resources\":{\"cpu\":{\"shares\":1}}}}",
		    "linux.resources.cpu.shares");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"linux\":{\"devices\":[{\"path\":\"/dev/../x\","
		    "\"type\":\"c\",\"major\":1,\"minor\":1}]}}",
		    "linux.devices[0].path");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"linux\":{\"cgroupsPath\":\"/a/../../b\"}}",
		    "linux.cgroupsPath");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"hooks\":{\"poststop\":[{\"path\":\"rel\"}]}}",
		    "hooks.poststop[0].path");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\","
		    "\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":"
		    "[{\"index\":9,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}}}",
		    "linux.seccomp.syscalls[0].args[0].index");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"linux\":{\"sysctl\":{\"../x\":\"1\"}}}", "linux.sysctl");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"annotations\":{\"a\":1}}", "annotations.a");
	parse_fails("[1]", "config.json");
	parse_fails("{\"ociVersion\":\"1.0.0\",\"ociVersion\":\"1.0.0\"}", "config.json");
}

static void test_seccomp_compiles_to_bpf(void **state)
{
	struct oci_spec *s = parse_ok(
		"{\"ociVersion\":\"1.0.0\",\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ERRNO\","
		"\"architectures\":[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\"],\"flags\":[\"SECCOMP_FILTER_FLAG_LOG\"],"
		"\"syscalls\":[{\"names\":[\"read\",\"no_such_syscall\"],\"action\":\"SCMP_ACT_ALLOW\"},"
		"{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":["
		"{\"index\":0,\"value\":0,\"op\":\"SCMP_CMP_EQ\"},{\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_EQ\"}]}]}}}");
	struct oci_bpf b;
	_cleanup_err_ sp_err *e = NULL;
	assert_int_equal(oci_seccomp_compile(&b, s->seccomp, &e), 0);
	assert_true(b.n > 4);
	assert_int_equal(b.flags, 2 /* SECCOMP_FILTER_FLAG_LOG */);
	oci_bpf_clear(&b);
	oci_spec_free(s);
}

static void test_process_parse_and_ids(void **state)
{
	json_t *j = json_loads("{\"args\":[\"true\"],\"terminal\":true,\"consoleSize\":{\"height\":3,\"width\":4}}",
			       0, NULL);
	struct oci_process p;
	_cleanup_err_ sp_err *e = NULL;
	assert_int_equal(oci_process_parse(&p, j, "process", &e), 0);
	assert_true(p.terminal);
	assert_int_equal(p.console_h, 3);
	assert_string_equal(p.cwd, "/");
	oci_process_clear(&p);
	json_decref(j);
	assert_true(oci_id_valid("abc-1_2.3+4"));
	assert_false(oci_id_valid(""));
	assert_false(oci_id_valid(".."));
	assert_false(oci_id_valid("a/b"));
	assert_false(oci_id_valid("a b"));
	assert_int_equal(oci_rlimit_from_name("RLIMIT_CORE"), RLIMIT_CORE);
	assert_int_equal(oci_rlimit_from_name("RLIMIT_NOPE"), -1);
}

static void test_features_document(void **state)
{
	_cleanup_free_ char *f = sp_oci_features_json();
	json_t *j = json_loads(f, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "ociVersionMax")), "1.2.0");
	assert_true(json_array_size(json_object_get(json_object_get(j, "linux"), "namespaces")) == 8);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_full_spec),
		cmocka_unit_test(test_errors_name_the_path),
		cmocka_unit_test(test_seccomp_compiles_to_bpf),
		cmocka_unit_test(test_process_parse_and_ids),
		cmocka_unit_test(test_features_document),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
