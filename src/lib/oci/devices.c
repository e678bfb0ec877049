/* SPDX-License-Identifier: Apache-2.0 */
/* cgroup v2 device control. cgroup v2 has no devices.allow file: the
 * kernel asks a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the
 * cgroup (BPF_CGROUP_DEVICE) for every mknod and open of a device node.
 * The program is generated here from the spec's rules as raw instructions
 * and loaded with bpf(2); no libbpf.
 *
 * Semantics (those of the v1 device cgroup as runc emulates it): the
 * decision is made per access bit (m, r, w); for each bit the *last* rule
 * that matches the device and names the bit decides; no match denies. A
 * request with several bits (open O_RDWR asks r|w) is allowed only if
 * every bit is. Type `a` rules match every device and every access (they
 * reset, as "a" does on v1). After the spec's rules come the devices
 * every container needs and the spec's linux.devices, allowed (runc's
 * order), so a deny-all first rule leaves exactly those. */
#include <fcntl.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>

#include "oci-internal.h"
#include "sealpod/log.h"

/* The devices every container needs (null, zero, full, random, urandom,
 * tty, console, ptmx, the pty slaves); the v1 path writes the same. */
const struct oci_dev_rule oci_default_dev_rules[] = {
	{true, 'c', 1, 3, "rwm"}, {true, 'c', 1, 5, "rwm"}, {true, 'c', 1, 7, "rwm"},
	{true, 'c', 1, 8, "rwm"}, {true, 'c', 1, 9, "rwm"}, {true, 'c', 5, 0, "rwm"},
	{true, 'c', 5, 1, "rwm"}, {true, 'c', 5, 2, "rwm"}, {true, 'c', 136, -1, "rwm"},
};
const size_t oci_n_default_dev_rules = SP_ARRAY_LEN(oci_default_dev_rules);

void oci_dev_rules_effective(struct oci_dev_rule **out, size_t *n,
			     const struct oci_dev_rule *rules, size_t n_rules,
			     const struct oci_device *devs, size_t n_devs)
{
	size_t cap = n_rules + oci_n_default_dev_rules + n_devs, k = 0;
	struct oci_dev_rule *v = sp_xcalloc(cap + 1, sizeof(*v));
	for (size_t i = 0; i < n_rules; i++)
		v[k++] = rules[i];
	for (size_t i = 0; i < oci_n_default_dev_rules; i++)
		v[k++] = oci_default_dev_rules[i];
	for (size_t i = 0; i < n_devs; i++) {
		if (devs[i].type != 'c' && devs[i].type != 'b' && devs[i].type != 'u')
			continue;
		v[k] = (struct oci_dev_rule){true, devs[i].type == 'b' ? 'b' : 'c',
					     devs[i].major, devs[i].minor, "rwm"};
		k++;
	}
	*out = v;
	*n = k;
}

struct prog {
	struct bpf_insn *v;
	size_t n, cap;
};

static size_t emit(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off,
		   int32_t imm)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->v = sp_xrealloc(p->v, p->cap * sizeof(*p->v));
	}
	p->v[p->n] = (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src,
				       .off = off, .imm = imm};
	return p->n++;
}

/* Points the jump at `at` to `target`; false if it does not fit. */
static bool patch(struct prog *p, size_t at, size_t target)
{
	ptrdiff_t off = (ptrdiff_t)target - (ptrdiff_t)at - 1;
	if (off < 0 || off > INT16_MAX)
		return false;
	p->v[at].off = (int16_t)off;
	return true;
}

static bool has_bit(const struct oci_dev_rule *r, char bit)
{
	return r->type == 'a' || !r->access[0] || strchr(r->access, bit) != NULL;
}

/* Registers: r1 ctx; r2 access bits; r3 device type; r4 major; r5 minor;
 * r6 scratch. */
int oci_dev_prog_build(struct oci_dev_prog *out, const struct oci_dev_rule *rules,
		       size_t n, sp_err **err)
{
	static const struct {
		char c;
		int32_t bit;
	} bits[] = {{'m', BPF_DEVCG_ACC_MKNOD}, {'r', BPF_DEVCG_ACC_READ}, {'w', BPF_DEVCG_ACC_WRITE}};
	struct prog p = {0};
	memset(out, 0, sizeof(*out));
	emit(&p, BPF_LDX | BPF_W | BPF_MEM, 2, 1, offsetof(struct bpf_cgroup_dev_ctx, access_type), 0);
	emit(&p, BPF_ALU | BPF_MOV | BPF_X, 3, 2, 0, 0);
	emit(&p, BPF_ALU | BPF_AND | BPF_K, 3, 0, 0, 0xffff);
	emit(&p, BPF_ALU | BPF_RSH | BPF_K, 2, 0, 0, 16);
	emit(&p, BPF_LDX | BPF_W | BPF_MEM, 4, 1, offsetof(struct bpf_cgroup_dev_ctx, major), 0);
	emit(&p, BPF_LDX | BPF_W | BPF_MEM, 5, 1, offsetof(struct bpf_cgroup_dev_ctx, minor), 0);
	size_t *fix = sp_xcalloc(n + 2, sizeof(size_t));
	bool fits = true;
	for (size_t b = 0; b < SP_ARRAY_LEN(bits); b++) {
		size_t nfix = 0;
		bool matched_all = false;
		/* Not asked for: this bit is not the block's concern. */
		emit(&p, BPF_ALU | BPF_MOV | BPF_X, 6, 2, 0, 0);
		emit(&p, BPF_ALU | BPF_AND | BPF_K, 6, 0, 0, bits[b].bit);
		fix[nfix++] = emit(&p, BPF_JMP32 | BPF_JEQ | BPF_K, 6, 0, 0, 0);
		/* Last match wins: test the rules from the end. */
		for (size_t i = n; i-- > 0;) {
			const struct oci_dev_rule *r = &rules[i];
			if (!has_bit(r, bits[b].c))
				continue;
			size_t jumps[3], nj = 0;
			if (r->type != 'a') {
				jumps[nj++] = emit(&p, BPF_JMP32 | BPF_JNE | BPF_K, 3, 0, 0,
						   r->type == 'b' ? BPF_DEVCG_DEV_BLOCK
								  : BPF_DEVCG_DEV_CHAR);
				if (r->major >= 0)
					jumps[nj++] = emit(&p, BPF_JMP32 | BPF_JNE | BPF_K, 4, 0, 0,
							   (int32_t)r->major);
				if (r->minor >= 0)
					jumps[nj++] = emit(&p, BPF_JMP32 | BPF_JNE | BPF_K, 5, 0, 0,
							   (int32_t)r->minor);
			}
			if (r->allow) {
				fix[nfix++] = emit(&p, BPF_JMP | BPF_JA, 0, 0, 0, 0);
			} else {
				emit(&p, BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
				emit(&p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
			}
			for (size_t k = 0; k < nj; k++)
				fits &= patch(&p, jumps[k], p.n);
			/* A rule that matches everything decides alone: what
			 * would follow is unreachable, which the verifier
			 * refuses. */
			if (!nj) {
				matched_all = true;
				break;
			}
		}
		/* No rule names this device for this access. */
		if (!matched_all) {
			emit(&p, BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
			emit(&p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
		}
		for (size_t k = 0; k < nfix; k++)
			fits &= patch(&p, fix[k], p.n);
	}
	emit(&p, BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
	emit(&p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	free(fix);
	if (!fits) {
		free(p.v);
		return sp_error(err, SP_ERR_INVALID,
				"linux.resources.devices: %zu rules are too many for one device "
				"program; merge rules with wildcards",
				n);
	}
	out->insns = p.v;
	out->n = p.n;
	return 0;
}

void oci_dev_prog_clear(struct oci_dev_prog *p)
{
	free(p->insns);
	memset(p, 0, sizeof(*p));
}

static int sys_bpf(int cmd, union bpf_attr *a)
{
	return (int)syscall(SYS_bpf, cmd, a, sizeof(*a));
}

static int prog_load(const struct oci_dev_prog *prog, sp_err **err)
{
	static const char license[] = "Apache-2.0";
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	a.insns = (uint64_t)(uintptr_t)prog->insns;
	a.insn_cnt = (uint32_t)prog->n;
	a.license = (uint64_t)(uintptr_t)license;
	int fd = sys_bpf(BPF_PROG_LOAD, &a);
	if (fd >= 0)
		return fd;
	int e = errno;
	/* Again with the verifier's log, to say why. */
	_cleanup_free_ char *log = sp_xmalloc(65536);
	log[0] = 0;
	a.log_level = 1;
	a.log_buf = (uint64_t)(uintptr_t)log;
	a.log_size = 65536;
	fd = sys_bpf(BPF_PROG_LOAD, &a);
	if (fd >= 0)
		return fd;
	size_t l = strlen(log);
	const char *tail = l > 400 ? log + l - 400 : log;
	return sp_error_sys(err, e,
			    "linux.resources.devices: loading the cgroup device program (needs "
			    "CONFIG_CGROUP_BPF and CAP_BPF/CAP_SYS_ADMIN)%s%s",
			    tail[0] ? "; verifier: " : "", tail);
}

int oci_dev_prog_attach(const char *cgdir, const struct oci_dev_prog *prog, sp_err **err)
{
	_cleanup_close_ int cg = open(cgdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0)
		return sp_error_sys(err, errno, "linux.resources.devices: opening %s", cgdir);
	/* The programs there now (an update replaces them). */
	uint32_t ids[64];
	union bpf_attr q;
	memset(&q, 0, sizeof(q));
	q.query.target_fd = (uint32_t)cg;
	q.query.attach_type = BPF_CGROUP_DEVICE;
	q.query.prog_ids = (uint64_t)(uintptr_t)ids;
	q.query.prog_cnt = SP_ARRAY_LEN(ids);
	if (sys_bpf(BPF_PROG_QUERY, &q) < 0)
		return sp_error_sys(err, errno, "linux.resources.devices: querying the programs of %s",
				    cgdir);
	uint32_t n_old = q.query.prog_cnt;
	_cleanup_close_ int pfd = prog_load(prog, err);
	if (pfd < 0)
		return (*err)->code;
	/* Attach first, detach the old ones after: while both are attached
	 * every program must allow, so there is no moment without rules. */
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.target_fd = (uint32_t)cg;
	a.attach_bpf_fd = (uint32_t)pfd;
	a.attach_type = BPF_CGROUP_DEVICE;
	a.attach_flags = BPF_F_ALLOW_MULTI;
	if (sys_bpf(BPF_PROG_ATTACH, &a) < 0)
		return sp_error_sys(err, errno,
				    "linux.resources.devices: attaching the device program to %s", cgdir);
	for (uint32_t i = 0; i < n_old && i < SP_ARRAY_LEN(ids); i++) {
		union bpf_attr g;
		memset(&g, 0, sizeof(g));
		g.prog_id = ids[i];
		_cleanup_close_ int old = sys_bpf(BPF_PROG_GET_FD_BY_ID, &g);
		if (old < 0)
			return sp_error_sys(err, errno,
					    "linux.resources.devices: the old device program %u of %s",
					    ids[i], cgdir);
		union bpf_attr d;
		memset(&d, 0, sizeof(d));
		d.target_fd = (uint32_t)cg;
		d.attach_bpf_fd = (uint32_t)old;
		d.attach_type = BPF_CGROUP_DEVICE;
		if (sys_bpf(BPF_PROG_DETACH, &d) < 0)
			return sp_error_sys(err, errno,
					    "linux.resources.devices: detaching the old device program "
					    "from %s",
					    cgdir);
	}
	sp_log_debug("%s: device program of %zu instructions attached (%u replaced)", cgdir,
		     prog->n, n_old);
	return 0;
}

int oci_devices_apply_v2(const char *cgdir, const struct oci_dev_rule *rules, size_t n_rules,
			 const struct oci_device *devs, size_t n_devs, sp_err **err)
{
	_cleanup_free_ struct oci_dev_rule *all = NULL;
	size_t n;
	oci_dev_rules_effective(&all, &n, rules, n_rules, devs, n_devs);
	struct oci_dev_prog prog;
	if (oci_dev_prog_build(&prog, all, n, err) < 0)
		return (*err)->code;
	int rc = oci_dev_prog_attach(cgdir, &prog, err);
	oci_dev_prog_clear(&prog);
	return rc;
}
