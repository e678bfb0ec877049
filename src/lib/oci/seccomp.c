/* SPDX-License-Identifier: Apache-2.0 */
/* linux.seccomp: checked and compiled to BPF with libseccomp in the
 * parent (so errors name the JSON path and the child needs no library
 * state), loaded with seccomp(2) in the child. */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "oci-internal.h"
#include "sealpod/file.h"

static const char *action_names[] = {
	"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
	"SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW",
	"SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
};

static const struct {
	const char *name;
	enum scmp_compare op;
} ops[] = {
	{"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT},
	{"SCMP_CMP_LE", SCMP_CMP_LE}, {"SCMP_CMP_EQ", SCMP_CMP_EQ},
	{"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT},
	{"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

static const struct {
	const char *name;
	unsigned flag;
} flags[] = {
	{"SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC},
	{"SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG},
	{"SECCOMP_FILTER_FLAG_SPEC_ALLOW", SECCOMP_FILTER_FLAG_SPEC_ALLOW},
};

/* The libseccomp action for `name`; errno_ret < 0 means "not given". */
static int parse_action(uint32_t *out, const char *name, int64_t errno_ret,
			const char *path, sp_err **err)
{
	uint32_t e = errno_ret >= 0 ? (uint32_t)errno_ret : EPERM;
	if (errno_ret > 4095)
		return sp_error(err, SP_ERR_PARSE, "%s: errnoRet %lld is too large",
				path, (long long)errno_ret);
	if (!strcmp(name, "SCMP_ACT_KILL") || !strcmp(name, "SCMP_ACT_KILL_THREAD"))
		*out = SCMP_ACT_KILL_THREAD;
	else if (!strcmp(name, "SCMP_ACT_KILL_PROCESS"))
		*out = SCMP_ACT_KILL_PROCESS;
	else if (!strcmp(name, "SCMP_ACT_TRAP"))
		*out = SCMP_ACT_TRAP;
	else if (!strcmp(name, "SCMP_ACT_ERRNO"))
		*out = SCMP_ACT_ERRNO(e);
	else if (!strcmp(name, "SCMP_ACT_TRACE"))
		*out = SCMP_ACT_TRACE(e);
	else if (!strcmp(name, "SCMP_ACT_ALLOW"))
		*out = SCMP_ACT_ALLOW;
	else if (!strcmp(name, "SCMP_ACT_LOG"))
		*out = SCMP_ACT_LOG;
	else if (!strcmp(name, "SCMP_ACT_NOTIFY"))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"%s: SCMP_ACT_NOTIFY (seccomp user notification) is not supported",
				path);
	else
		return sp_error(err, SP_ERR_PARSE, "%s: unknown action `%s`", path, name);
	return 0;
}

static int get_errno_ret(const json_t *o, const char *key, int64_t *out,
			 const char *path, sp_err **err)
{
	*out = -1;
	if (sp_json_get_int(o, key, false, out, path, err) < 0)
		return (*err)->code;
	if (json_object_get(o, key) && *out < 0)
		return sp_error(err, SP_ERR_PARSE, "%s.%s: must not be negative", path, key);
	return 0;
}

static int add_rule(scmp_filter_ctx ctx, uint32_t act, int nr,
		    struct scmp_arg_cmp *args, unsigned n, const char *path,
		    const char *name, sp_err **err)
{
	int r = seccomp_rule_add_array(ctx, act, nr, n, args);
	if (r < 0)
		return sp_error_sys(err, -r, "%s: adding the rule for `%s`", path, name);
	return 0;
}

/* Builds the filter; with ctx_out NULL it only validates. */
static int build(scmp_filter_ctx *ctx_out, unsigned *flags_out,
		 const json_t *j, sp_err **err)
{
	const char *P = "linux.seccomp";
	const char *def;
	int64_t def_errno;
	uint32_t def_act;
	*flags_out = 0;
	if (sp_json_get_string(j, "defaultAction", true, &def, P, err) < 0 ||
	    get_errno_ret(j, "defaultErrnoRet", &def_errno, P, err) < 0 ||
	    parse_action(&def_act, def, def_errno, "linux.seccomp.defaultAction", err) < 0)
		return (*err)->code;
	if (json_object_get(j, "listenerPath"))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"linux.seccomp.listenerPath: seccomp notification is not supported");
	scmp_filter_ctx ctx = seccomp_init(def_act);
	if (!ctx)
		return sp_error(err, SP_ERR_INVALID,
				"linux.seccomp.defaultAction: libseccomp refused `%s`", def);
	json_t *a = NULL;
	size_t i, k;
	json_t *e, *v;
	if (sp_json_get_array(j, "architectures", false, &a, P, err) < 0)
		goto fail;
	json_array_foreach(a, i, e) {
		const char *s = json_string_value(e);
		char low[32];
		if (!s || strncmp(s, "SCMP_ARCH_", 10) != 0 || strlen(s) - 10 >= sizeof(low)) {
			sp_error(err, SP_ERR_PARSE, "linux.seccomp.architectures[%zu]: not an SCMP_ARCH_ name", i);
			goto fail;
		}
		for (k = 0; s[10 + k]; k++)
			low[k] = (char)(s[10 + k] >= 'A' && s[10 + k] <= 'Z' ? s[10 + k] + 32 : s[10 + k]);
		low[k] = 0;
		uint32_t arch = seccomp_arch_resolve_name(low);
		if (!arch) {
			sp_error(err, SP_ERR_PARSE, "linux.seccomp.architectures[%zu]: unknown `%s`", i, s);
			goto fail;
		}
		int r = seccomp_arch_add(ctx, arch);
		if (r < 0 && r != -EEXIST) {
			sp_error_sys(err, -r, "linux.seccomp.architectures[%zu]: adding `%s`", i, s);
			goto fail;
		}
	}
	a = NULL;
	if (sp_json_get_array(j, "flags", false, &a, P, err) < 0)
		goto fail;
	json_array_foreach(a, i, e) {
		const char *s = json_string_value(e);
		bool found = false;
		for (k = 0; s && k < SP_ARRAY_LEN(flags); k++)
			if (!strcmp(s, flags[k].name)) {
				*flags_out |= flags[k].flag;
				found = true;
			}
		if (!found) {
			sp_error(err, SP_ERR_PARSE, "linux.seccomp.flags[%zu]: unknown flag", i);
			goto fail;
		}
	}
	a = NULL;
	if (sp_json_get_array(j, "syscalls", false, &a, P, err) < 0)
		goto fail;
	if (json_array_size(a) > 4096) {
		sp_error(err, SP_ERR_LIMIT, "linux.seccomp.syscalls: too many rules");
		goto fail;
	}
	json_array_foreach(a, i, e) {
		char p[64];
		snprintf(p, sizeof(p), "linux.seccomp.syscalls[%zu]", i);
		const char *act_name;
		int64_t eret;
		uint32_t act;
		json_t *names = NULL, *args = NULL;
		if (sp_json_get_string(e, "action", true, &act_name, p, err) < 0 ||
		    get_errno_ret(e, "errnoRet", &eret, p, err) < 0 ||
		    parse_action(&act, act_name, eret, p, err) < 0 ||
		    sp_json_get_array(e, "names", true, &names, p, err) < 0 ||
		    sp_json_get_array(e, "args", false, &args, p, err) < 0)
			goto fail;
		struct scmp_arg_cmp cmp[6];
		unsigned n_args = 0;
		bool dup_index = false;
		if (json_array_size(args) > 6) {
			sp_error(err, SP_ERR_PARSE, "%s.args: more than 6 conditions", p);
			goto fail;
		}
		json_array_foreach(args, k, v) {
			char q[96];
			snprintf(q, sizeof(q), "%s.args[%zu]", p, k);
			int64_t idx, val, val2 = 0;
			const char *op;
			if (sp_json_get_int(v, "index", true, &idx, q, err) < 0 ||
			    sp_json_get_int(v, "value", true, &val, q, err) < 0 ||
			    sp_json_get_int(v, "valueTwo", false, &val2, q, err) < 0 ||
			    sp_json_get_string(v, "op", true, &op, q, err) < 0)
				goto fail;
			if (idx < 0 || idx > 5) {
				sp_error(err, SP_ERR_PARSE, "%s.index: %lld is outside 0..5", q, (long long)idx);
				goto fail;
			}
			int o = -1;
			for (size_t m = 0; m < SP_ARRAY_LEN(ops); m++)
				if (!strcmp(op, ops[m].name))
					o = (int)ops[m].op;
			if (o < 0) {
				sp_error(err, SP_ERR_PARSE, "%s.op: unknown operator `%s`", q, op);
				goto fail;
			}
			for (unsigned m = 0; m < n_args; m++)
				if (cmp[m].arg == (unsigned)idx)
					dup_index = true;
			cmp[n_args++] = (struct scmp_arg_cmp){(unsigned)idx, (enum scmp_compare)o,
							      (scmp_datum_t)val, (scmp_datum_t)val2};
		}
		if (act == def_act)
			continue; /* libseccomp refuses rules equal to the default */
		json_array_foreach(names, k, v) {
			const char *name = json_string_value(v);
			if (!name) {
				sp_error(err, SP_ERR_PARSE, "%s.names[%zu]: expected a string", p, k);
				goto fail;
			}
			int nr = seccomp_syscall_resolve_name(name);
			if (nr == __NR_SCMP_ERROR)
				continue; /* unknown here (other arch or kernel): as runc */
			if (!dup_index) {
				if (add_rule(ctx, act, nr, cmp, n_args, p, name, err) < 0)
					goto fail;
				continue;
			}
			/* The same argument twice can't be one rule in
			 * libseccomp: each condition becomes its own rule. */
			for (unsigned m = 0; m < n_args; m++)
				if (add_rule(ctx, act, nr, &cmp[m], 1, p, name, err) < 0)
					goto fail;
		}
	}
	if (ctx_out)
		*ctx_out = ctx;
	else
		seccomp_release(ctx);
	return 0;
fail:
	seccomp_release(ctx);
	return (*err)->code;
}

int oci_seccomp_validate(const json_t *j, sp_err **err)
{
	unsigned f;
	return build(NULL, &f, j, err);
}

int oci_seccomp_compile(struct oci_bpf *out, const json_t *j, sp_err **err)
{
	scmp_filter_ctx ctx;
	memset(out, 0, sizeof(*out));
	if (build(&ctx, &out->flags, j, err) < 0)
		return (*err)->code;
	_cleanup_close_ int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
	int r = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (r < 0)
		return sp_error_sys(err, -r, "linux.seccomp: compiling the filter");
	size_t len;
	uint8_t *data;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return sp_error_sys(err, errno, "linux.seccomp: reading the filter");
	if (sp_read_fd(&data, &len, fd, 1 << 20, "seccomp filter", err) < 0)
		return (*err)->code;
	if (len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		free(data);
		return sp_error(err, SP_ERR_LIMIT,
				"linux.seccomp: the compiled filter has %zu bytes, over the kernel's limit",
				len);
	}
	out->prog = data;
	out->n = len / sizeof(struct sock_filter);
	return 0;
}

void oci_bpf_clear(struct oci_bpf *b)
{
	free(b->prog);
	memset(b, 0, sizeof(*b));
}

int oci_seccomp_load(const struct oci_bpf *b, char *msg, size_t n)
{
	if (!b || !b->prog)
		return 0;
	struct sock_fprog prog = {.len = (unsigned short)b->n, .filter = b->prog};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, b->flags, &prog) < 0)
		return oci_msg(msg, n, errno, "linux.seccomp: loading the filter");
	return 0;
}

json_t *oci_seccomp_features(void)
{
	json_t *o = json_object(), *a = json_array(), *op = json_array(),
	       *ar = json_array(), *fl = json_array();
	for (size_t i = 0; i < SP_ARRAY_LEN(action_names); i++)
		if (strcmp(action_names[i], "SCMP_ACT_NOTIFY"))
			json_array_append_new(a, json_string(action_names[i]));
	for (size_t i = 0; i < SP_ARRAY_LEN(ops); i++)
		json_array_append_new(op, json_string(ops[i].name));
	static const char *archs[] = {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32",
				      "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
	for (size_t i = 0; i < SP_ARRAY_LEN(archs); i++)
		json_array_append_new(ar, json_string(archs[i]));
	for (size_t i = 0; i < SP_ARRAY_LEN(flags); i++)
		json_array_append_new(fl, json_string(flags[i].name));
	json_object_set_new(o, "enabled", json_true());
	json_object_set_new(o, "actions", a);
	json_object_set_new(o, "operators", op);
	json_object_set_new(o, "archs", ar);
	json_object_set_new(o, "knownFlags", json_copy(fl));
	json_object_set_new(o, "supportedFlags", fl);
	return o;
}
