/* SPDX-License-Identifier: Apache-2.0 */
/* The OCI spec parser and the pure helpers of the container engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <linux/bpf.h>
#include <unistd.h>

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
	/* An empty option (a fuzzer's: it also leaked the option buffer). */
	parse_fails("{\"ociVersion\":\"1.0.0\",\"mounts\":[{\"destination\":\"/a\",\"type\":\"tmpfs\","
		    "\"options\":[\"nosuid\",\"\"]}]}",
		    "mounts[0].options[1]");
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

/* A small interpreter for the instructions the device program uses, so
 * its decisions can be checked on any host. Anything else fails. */
static int run_dev_prog(const struct oci_dev_prog *p, char type, uint32_t major,
			uint32_t minor, const char *acc)
{
	uint32_t access = 0;
	for (const char *a = acc; *a; a++)
		access |= *a == 'm' ? BPF_DEVCG_ACC_MKNOD : *a == 'r' ? BPF_DEVCG_ACC_READ
								       : BPF_DEVCG_ACC_WRITE;
	struct bpf_cgroup_dev_ctx ctx = {
		.access_type = (access << 16) |
			       (type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR),
		.major = major, .minor = minor};
	uint64_t r[11] = {0};
	const struct bpf_insn *v = p->insns;
	for (size_t pc = 0; pc < p->n; pc++) {
		const struct bpf_insn *i = &v[pc];
		uint64_t src = BPF_SRC(i->code) == BPF_X ? r[i->src_reg] : (uint64_t)(int64_t)i->imm;
		bool jump = false;
		switch (BPF_CLASS(i->code)) {
		case BPF_LDX:
			assert_int_equal(i->code, BPF_LDX | BPF_W | BPF_MEM);
			assert_int_equal(i->src_reg, 1);
			assert_true(i->off >= 0 && i->off + 4 <= (int)sizeof(ctx) && i->off % 4 == 0);
			r[i->dst_reg] = ((uint32_t *)&ctx)[i->off / 4];
			break;
		case BPF_ALU: {
			uint32_t d = (uint32_t)r[i->dst_reg], s32 = (uint32_t)src;
			switch (BPF_OP(i->code)) {
			case BPF_MOV: d = s32; break;
			case BPF_AND: d &= s32; break;
			case BPF_RSH: d >>= s32; break;
			default: fail_msg("ALU op %#x", i->code);
			}
			r[i->dst_reg] = d;
			break;
		}
		case BPF_ALU64:
			assert_int_equal(BPF_OP(i->code), BPF_MOV);
			r[i->dst_reg] = src;
			break;
		case BPF_JMP32:
		case BPF_JMP: {
			uint64_t d = r[i->dst_reg];
			if (BPF_CLASS(i->code) == BPF_JMP32)
				d = (uint32_t)d, src = (uint32_t)src;
			switch (BPF_OP(i->code)) {
			case BPF_EXIT: return (int)r[0];
			case BPF_JA: jump = true; break;
			case BPF_JEQ: jump = d == src; break;
			case BPF_JNE: jump = d != src; break;
			default: fail_msg("JMP op %#x", i->code);
			}
			if (jump) {
				/* Forward only: the program always ends. */
				assert_true(i->off >= 0 && pc + 1 + (size_t)i->off < p->n);
				pc += (size_t)i->off;
			}
			break;
		}
		default:
			fail_msg("instruction class %#x", i->code);
		}
	}
	fail_msg("the program ran off its end");
	return -1;
}

static struct oci_dev_prog dev_prog(const char *json, bool defaults)
{
	_cleanup_free_ char *doc = sp_xasprintf(
		"{\"ociVersion\":\"1.0.0\",\"linux\":{\"resources\":{\"devices\":%s},"
		"\"devices\":[{\"path\":\"/dev/fuse\",\"type\":\"c\",\"major\":10,\"minor\":229}]}}",
		json);
	struct oci_spec *s = parse_ok(doc);
	_cleanup_free_ struct oci_dev_rule *all = NULL;
	size_t n = s->res.n_dev_rules;
	if (defaults)
		oci_dev_rules_effective(&all, &n, s->res.dev_rules, s->res.n_dev_rules, s->devices,
					s->n_devices);
	struct oci_dev_prog p;
	_cleanup_err_ sp_err *e = NULL;
	if (oci_dev_prog_build(&p, defaults ? all : s->res.dev_rules, n, &e) < 0)
		fail_msg("%s", sp_err_msg(e));
	oci_spec_free(s);
	return p;
}

static void test_device_program_semantics(void **state)
{
	/* What containerd sends: deny all, then allow some. */
	struct oci_dev_prog p = dev_prog(
		"[{\"allow\":false,\"access\":\"rwm\"},"
		"{\"allow\":true,\"type\":\"c\",\"major\":10,\"minor\":200,\"access\":\"rw\"},"
		"{\"allow\":true,\"type\":\"b\",\"major\":7,\"access\":\"r\"}]", true);
	assert_int_equal(run_dev_prog(&p, 'c', 1, 3, "rw"), 1);   /* /dev/null: default */
	assert_int_equal(run_dev_prog(&p, 'c', 1, 3, "m"), 1);
	assert_int_equal(run_dev_prog(&p, 'c', 136, 7, "rw"), 1); /* a pty: minor wildcard */
	assert_int_equal(run_dev_prog(&p, 'c', 10, 229, "rwm"), 1); /* linux.devices */
	assert_int_equal(run_dev_prog(&p, 'c', 10, 200, "rw"), 1);
	assert_int_equal(run_dev_prog(&p, 'c', 10, 200, "m"), 0);  /* access not granted */
	assert_int_equal(run_dev_prog(&p, 'c', 10, 200, "rm"), 0); /* every bit must be */
	assert_int_equal(run_dev_prog(&p, 'b', 7, 3, "r"), 1);    /* major wildcard */
	assert_int_equal(run_dev_prog(&p, 'b', 7, 3, "w"), 0);
	assert_int_equal(run_dev_prog(&p, 'c', 7, 3, "r"), 0);    /* type matters */
	assert_int_equal(run_dev_prog(&p, 'b', 8, 0, "r"), 0);    /* a disk */
	assert_int_equal(run_dev_prog(&p, 'c', 1, 1, "r"), 0);    /* /dev/mem */
	assert_int_equal(run_dev_prog(&p, 'c', 1, 1, ""), 1);     /* nothing asked */
	oci_dev_prog_clear(&p);

	/* Last match wins, per access bit. */
	p = dev_prog("[{\"allow\":true,\"access\":\"rwm\"},"
		     "{\"allow\":false,\"type\":\"c\",\"major\":1,\"minor\":1,\"access\":\"w\"}]",
		     false);
	assert_int_equal(run_dev_prog(&p, 'c', 1, 1, "r"), 1);
	assert_int_equal(run_dev_prog(&p, 'c', 1, 1, "w"), 0);
	assert_int_equal(run_dev_prog(&p, 'c', 1, 1, "rw"), 0);
	assert_int_equal(run_dev_prog(&p, 'c', 1, 2, "w"), 1);
	assert_int_equal(run_dev_prog(&p, 'b', 8, 0, "rwm"), 1);
	oci_dev_prog_clear(&p);

	/* A later type-a rule resets what came before. */
	p = dev_prog("[{\"allow\":false,\"type\":\"c\",\"major\":1,\"minor\":1},"
		     "{\"allow\":true,\"type\":\"a\"},{\"allow\":false,\"type\":\"b\",\"access\":\"m\"}]",
		     false);
	assert_int_equal(run_dev_prog(&p, 'c', 1, 1, "rw"), 1);
	assert_int_equal(run_dev_prog(&p, 'b', 8, 0, "rw"), 1);
	assert_int_equal(run_dev_prog(&p, 'b', 8, 0, "m"), 0);
	oci_dev_prog_clear(&p);

	/* A later allow opens a hole in an earlier deny. */
	p = dev_prog("[{\"allow\":false},{\"allow\":true,\"type\":\"c\",\"major\":4,\"access\":\"r\"},"
		     "{\"allow\":false,\"type\":\"c\",\"major\":4,\"minor\":1}]", false);
	assert_int_equal(run_dev_prog(&p, 'c', 4, 2, "r"), 1);
	assert_int_equal(run_dev_prog(&p, 'c', 4, 1, "r"), 0);
	assert_int_equal(run_dev_prog(&p, 'c', 4, 2, "w"), 0);
	oci_dev_prog_clear(&p);

	/* No rules at all: everything is denied. */
	p = dev_prog("[]", false);
	assert_int_equal(run_dev_prog(&p, 'c', 1, 3, "r"), 0);
	assert_int_equal(run_dev_prog(&p, 'b', 1, 3, "m"), 0);
	oci_dev_prog_clear(&p);
}

static void test_device_program_too_many_rules(void **state)
{
	/* Jumps are 16-bit: a rule set that cannot fit is refused, not
	 * truncated. */
	size_t n = 10000;
	struct oci_dev_rule *r = sp_xcalloc(n, sizeof(*r));
	for (size_t i = 0; i < n; i++)
		r[i] = (struct oci_dev_rule){true, 'c', (int64_t)(i % 4096), 1, "rwm"};
	struct oci_dev_prog p;
	_cleanup_err_ sp_err *e = NULL;
	assert_true(oci_dev_prog_build(&p, r, n, &e) < 0);
	assert_non_null(strstr(sp_err_msg(e), "linux.resources.devices"));
	free(r);
}

/* Loads and attaches for real where this runs as root with a cgroup2
 * hierarchy (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts),
 * replacing the program once as an update does. */
static void test_device_program_loads(void **state)
{
	static const char *roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	const char *root = NULL;
	for (size_t i = 0; i < 2; i++) {
		struct statfs sf;
		if (statfs(roots[i], &sf) == 0 && sf.f_type == 0x63677270)
			root = roots[i];
	}
	if (geteuid() != 0 || !root)
		skip();
	_cleanup_free_ char *dir = sp_xasprintf("%s/sp-unit-dev-%d", root, getpid());
	if (mkdir(dir, 0755) < 0)
		skip();
	struct oci_dev_prog p = dev_prog("[{\"allow\":false,\"access\":\"rwm\"}]", true);
	_cleanup_err_ sp_err *e = NULL;
	int rc = oci_dev_prog_attach(dir, &p, &e);
	if (rc == 0)
		rc = oci_dev_prog_attach(dir, &p, &e);
	uint32_t ids[8], cnt = 8;
	if (rc == 0) {
		int fd = open(dir, O_RDONLY | O_DIRECTORY);
		union bpf_attr q;
		memset(&q, 0, sizeof(q));
		q.query.target_fd = (uint32_t)fd;
		q.query.attach_type = BPF_CGROUP_DEVICE;
		q.query.prog_ids = (uint64_t)(uintptr_t)ids;
		q.query.prog_cnt = cnt;
		assert_int_equal(syscall(SYS_bpf, BPF_PROG_QUERY, &q, sizeof(q)), 0);
		cnt = q.query.prog_cnt;
		close(fd);
	}
	oci_dev_prog_clear(&p);
	rmdir(dir);
	if (rc < 0)
		fail_msg("%s", sp_err_msg(e));
	assert_int_equal(cnt, 1); /* the second replaced the first */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_full_spec),
		cmocka_unit_test(test_errors_name_the_path),
		cmocka_unit_test(test_seccomp_compiles_to_bpf),
		cmocka_unit_test(test_process_parse_and_ids),
		cmocka_unit_test(test_features_document),
		cmocka_unit_test(test_device_program_semantics),
		cmocka_unit_test(test_device_program_too_many_rules),
		cmocka_unit_test(test_device_program_loads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
