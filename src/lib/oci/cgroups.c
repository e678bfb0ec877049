/* SPDX-License-Identifier: Apache-2.0 */
/* cgroups: v2 (the guest) and v1/hybrid (hosts such as Debian with
 * cgroup v1 controllers and an empty-ish unified hierarchy). A container
 * uses one directory per hierarchy; in hybrid mode, controllers that are
 * only on the unified hierarchy (often hugetlb) are driven there. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>

#include "oci-internal.h"
#include "sealpod/file.h"
#include "sealpod/log.h"

#define CG_ROOT "/sys/fs/cgroup"
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

bool oci_cgroup_is_v2(void)
{
	struct statfs sf;
	return statfs(CG_ROOT, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

/* The caller's own cgroup in a hierarchy ("" ctrl: the unified one). */
static char *own_cgroup(const char *ctrl)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/cgroup", "re");
	char line[4096];
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = 0;
		const char *list = c1 + 1;
		if (!ctrl[0] ? !list[0] : false)
			return sp_xstrdup(c2 + 1);
		if (ctrl[0]) {
			char *save, *tmp = sp_xstrdup(list);
			for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save))
				if (!strcmp(t, ctrl)) {
					free(tmp);
					return sp_xstrdup(c2 + 1);
				}
			free(tmp);
		}
	}
	return sp_xstrdup("/");
}

/* The hierarchies: (mountpoint, controller) pairs. One v1 mount may hold
 * several controllers (cpu,cpuacct); it then appears once with the first
 * one's name and all are served by the same directory. */
static size_t hierarchies(char ***mnts, char ***ctrls)
{
	size_t n = 0;
	*mnts = sp_xcalloc(32, sizeof(char *));
	*ctrls = sp_xcalloc(32, sizeof(char *));
	if (oci_cgroup_is_v2()) {
		(*mnts)[n] = sp_xstrdup(CG_ROOT);
		(*ctrls)[n++] = sp_xstrdup("");
		return n;
	}
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	while (f && fgets(line, sizeof(line), f) && n < 31) {
		char *sep = strstr(line, " - ");
		if (!sep)
			continue;
		char mp[1024], fstype[64], src[256], opts[1024];
		if (sscanf(line, "%*s %*s %*s %*s %1023s", mp) != 1 ||
		    sscanf(sep + 3, "%63s %255s %1023s", fstype, src, opts) != 3)
			continue;
		if (strncmp(mp, CG_ROOT "/", strlen(CG_ROOT) + 1) != 0)
			continue;
		if (!strcmp(fstype, "cgroup2")) {
			(*mnts)[n] = sp_xstrdup(mp);
			(*ctrls)[n++] = sp_xstrdup("");
			continue;
		}
		if (strcmp(fstype, "cgroup") != 0)
			continue;
		static const char *known[] = {"cpu", "cpuacct", "cpuset", "memory", "devices",
					      "freezer", "blkio", "pids", "hugetlb",
					      "net_cls", "net_prio", "perf_event", "rdma", "misc"};
		char *save;
		for (char *t = strtok_r(opts, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			for (size_t k = 0; k < SP_ARRAY_LEN(known); k++)
				if (!strcmp(t, known[k])) {
					bool dup = false;
					for (size_t m = 0; m < n; m++)
						if (!strcmp((*mnts)[m], mp))
							dup = true;
					if (!dup) {
						(*mnts)[n] = sp_xstrdup(mp);
						(*ctrls)[n++] = sp_xstrdup(t);
					}
				}
		}
	}
	return n;
}

static void add_dir(struct oci_cgroup *cg, const char *dir, const char *ctrl)
{
	cg->dirs = sp_xrealloc(cg->dirs, (cg->n + 2) * sizeof(char *));
	cg->ctrls = sp_xrealloc(cg->ctrls, (cg->n + 2) * sizeof(char *));
	cg->dirs[cg->n] = sp_xstrdup(dir);
	cg->ctrls[cg->n++] = sp_xstrdup(ctrl);
	cg->dirs[cg->n] = cg->ctrls[cg->n] = NULL;
}

/* dirs for an absolute path (the same in every hierarchy). */
int oci_cgroup_open(struct oci_cgroup *cg, const char *abs_path, sp_err **err)
{
	char **mnts, **ctrls;
	size_t n = hierarchies(&mnts, &ctrls);
	cg->v2 = oci_cgroup_is_v2();
	cg->path = sp_xstrdup(abs_path);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *d = sp_xasprintf("%s%s", mnts[i], abs_path);
		add_dir(cg, d, ctrls[i]);
		free(mnts[i]);
		free(ctrls[i]);
	}
	free(mnts);
	free(ctrls);
	if (!n)
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"cgroups: no cgroup hierarchy is mounted under %s", CG_ROOT);
	return 0;
}

static bool is_file(const char *dir, const char *f)
{
	_cleanup_free_ char *p = sp_xasprintf("%s/%s", dir, f);
	return access(p, F_OK) == 0;
}

static int read_str(const char *dir, const char *f, char *buf, size_t n)
{
	_cleanup_free_ char *p = sp_xasprintf("%s/%s", dir, f);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, buf, n - 1);
	if (r < 0)
		return -1;
	buf[r] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int write_str(const char *dir, const char *f, const char *val,
		     const char *field, sp_err **err)
{
	_cleanup_free_ char *p = sp_xasprintf("%s/%s", dir, f);
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, strlen(val)) < 0)
		return sp_error_sys(err, errno, "%s: writing `%s` to %s", field, val, p);
	return 0;
}

static int write_i64(const char *dir, const char *f, int64_t v, const char *field,
		     sp_err **err)
{
	char b[32];
	snprintf(b, sizeof(b), "%lld", (long long)v);
	return write_str(dir, f, b, field, err);
}

/* v1 cpuset: a new directory starts with empty cpus/mems, which would
 * refuse every task; copy them from the parent down the path. */
static void cpuset_fill(const char *dir)
{
	static const char *files[] = {"cpuset.cpus", "cpuset.mems"};
	_cleanup_free_ char *parent = sp_xstrdup(dir);
	char *slash = strrchr(parent, '/');
	if (!slash)
		return;
	*slash = 0;
	for (int i = 0; i < 2; i++) {
		char cur[4096], par[4096];
		if (read_str(dir, files[i], cur, sizeof(cur)) == 0 && !cur[0] &&
		    read_str(parent, files[i], par, sizeof(par)) == 0 && par[0])
			write_str(dir, files[i], par, "cgroups", NULL);
	}
}

/* mkdir -p, remembering each directory made (for undo), and giving each
 * new v1 cpuset directory its parent's cpus/mems. */
static int mkdir_cg(struct oci_cgroup *cg, const char *dir, const char *ctrl,
		    const char *mnt_len_str, size_t mnt_len, sp_err **err)
{
	_cleanup_free_ char *p = sp_xstrdup(dir);
	for (char *s = p + mnt_len + 1;; s++) {
		if (*s == '/' || !*s) {
			char c = *s;
			*s = 0;
			if (mkdir(p, 0755) == 0) {
				cg->made = sp_xrealloc(cg->made, (cg->n_made + 1) * sizeof(char *));
				cg->made[cg->n_made++] = sp_xstrdup(p);
				if (!strcmp(ctrl, "cpuset"))
					cpuset_fill(p);
			} else if (errno != EEXIST) {
				return sp_error_sys(err, errno, "linux.cgroupsPath: creating %s", p);
			}
			*s = c;
			if (!c)
				break;
		}
	}
	(void)mnt_len_str;
	return 0;
}

/* v2: turn on every available controller for the children of each
 * ancestor, so the leaf can use them. */
static void enable_controllers(const char *mnt, const char *path)
{
	_cleanup_free_ char *p = sp_xasprintf("%s%s", mnt, path);
	size_t base = strlen(mnt);
	char *end = strrchr(p, '/');
	if (!end || (size_t)(end - p) < base)
		return;
	*end = 0; /* the leaf's parent */
	for (size_t i = base;; i++) {
		if (p[i] == '/' || !p[i]) {
			char c = p[i];
			p[i] = 0;
			char avail[1024];
			if (read_str(p, "cgroup.controllers", avail, sizeof(avail)) == 0) {
				char *save;
				for (char *t = strtok_r(avail, " ", &save); t;
				     t = strtok_r(NULL, " ", &save)) {
					char b[64];
					snprintf(b, sizeof(b), "+%s", t);
					write_str(p, "cgroup.subtree_control", b, "cgroups", NULL);
				}
			}
			p[i] = c;
			if (!c)
				break;
		}
	}
}

int oci_cgroup_setup(struct oci_cgroup *cg, const char *spec_path,
		     const char *id, sp_err **err)
{
	memset(cg, 0, sizeof(*cg));
	char **mnts, **ctrls;
	size_t n = hierarchies(&mnts, &ctrls);
	int rc = 0;
	cg->v2 = oci_cgroup_is_v2();
	_cleanup_free_ char *rel = spec_path && spec_path[0]
					  ? sp_xstrdup(spec_path)
					  : sp_xasprintf("/sealpod/%s", id);
	if (!n)
		rc = sp_error(err, SP_ERR_UNSUPPORTED, "cgroups: none mounted under %s", CG_ROOT);
	for (size_t i = 0; i < n && rc == 0; i++) {
		_cleanup_free_ char *base = rel[0] == '/' ? sp_xstrdup("") : own_cgroup(ctrls[i]);
		if (!strcmp(base, "/"))
			base[0] = 0;
		_cleanup_free_ char *path = sp_xasprintf("%s/%s", base, rel[0] == '/' ? rel + 1 : rel);
		/* Normalize away a trailing slash. */
		size_t l = strlen(path);
		while (l > 1 && path[l - 1] == '/')
			path[--l] = 0;
		if (!cg->path)
			cg->path = sp_xstrdup(path);
		_cleanup_free_ char *dir = sp_xasprintf("%s%s", mnts[i], path);
		rc = mkdir_cg(cg, dir, ctrls[i], NULL, strlen(mnts[i]), err);
		if (rc == 0) {
			if (!ctrls[i][0])
				enable_controllers(mnts[i], path);
			add_dir(cg, dir, ctrls[i]);
		}
	}
	for (size_t i = 0; i < n; i++) {
		free(mnts[i]);
		free(ctrls[i]);
	}
	free(mnts);
	free(ctrls);
	if (rc < 0)
		oci_cgroup_destroy(cg, NULL);
	return rc;
}

static bool has_v1(const struct oci_cgroup *cg, const char *ctrl)
{
	for (size_t i = 0; i < cg->n; i++)
		if (!strcmp(cg->ctrls[i], ctrl))
			return true;
	return false;
}

static int apply_devices_v1(const char *d, const struct oci_spec *s,
			    const struct oci_spec *own, sp_err **err)
{
	const struct oci_resources *r = &s->res;
	if (!r->n_dev_rules)
		return 0;
	/* The spec's rules in order, then what every container needs and
	 * the devices the spec creates (as runc does). */
	_cleanup_free_ struct oci_dev_rule *all = NULL;
	size_t n;
	oci_dev_rules_effective(&all, &n, r->dev_rules, r->n_dev_rules, own->devices,
				own->n_devices);
	for (size_t i = 0; i < n; i++) {
		const struct oci_dev_rule *x = &all[i];
		char rule[96], maj[24] = "*", min[24] = "*";
		if (x->major >= 0)
			snprintf(maj, sizeof(maj), "%lld", (long long)x->major);
		if (x->minor >= 0)
			snprintf(min, sizeof(min), "%lld", (long long)x->minor);
		if (x->type == 'a')
			snprintf(rule, sizeof(rule), "a");
		else
			snprintf(rule, sizeof(rule), "%c %s:%s %s", x->type, maj, min,
				 x->access[0] ? x->access : "rwm");
		char field[64];
		if (i < r->n_dev_rules)
			snprintf(field, sizeof(field), "linux.resources.devices[%zu]", i);
		else
			snprintf(field, sizeof(field), "linux.devices");
		if (write_str(d, x->allow ? "devices.allow" : "devices.deny", rule, field, err) < 0)
			return (*err)->code;
	}
	return 0;
}

static int apply_v1(const char *d, const char *ctrl, const struct oci_spec *s,
		    const struct oci_spec *own, sp_err **err)
{
	const struct oci_resources *r = &s->res;
	const char *M = "linux.resources.memory";
	if (!strcmp(ctrl, "memory")) {
		if (r->mem_limit != OCI_UNSET) {
			/* memsw must stay >= limit: order the writes. */
			bool swap = r->mem_swap != OCI_UNSET && is_file(d, "memory.memsw.limit_in_bytes");
			if (swap && write_i64(d, "memory.memsw.limit_in_bytes", r->mem_swap, NULL, NULL) < 0) {
				if (write_i64(d, "memory.limit_in_bytes", r->mem_limit, M, err) < 0 ||
				    write_i64(d, "memory.memsw.limit_in_bytes", r->mem_swap,
					      "linux.resources.memory.swap", err) < 0)
					return (*err)->code;
			} else if (write_i64(d, "memory.limit_in_bytes", r->mem_limit,
					     "linux.resources.memory.limit", err) < 0) {
				return (*err)->code;
			}
		} else if (r->mem_swap != OCI_UNSET &&
			   write_i64(d, "memory.memsw.limit_in_bytes", r->mem_swap,
				     "linux.resources.memory.swap", err) < 0) {
			return (*err)->code;
		}
		if (r->mem_reservation != OCI_UNSET &&
		    write_i64(d, "memory.soft_limit_in_bytes", r->mem_reservation,
			      "linux.resources.memory.reservation", err) < 0)
			return (*err)->code;
		if (r->mem_swappiness != OCI_UNSET &&
		    write_i64(d, "memory.swappiness", r->mem_swappiness,
			      "linux.resources.memory.swappiness", err) < 0)
			return (*err)->code;
		if (r->mem_disable_oom_killer &&
		    write_str(d, "memory.oom_control", "1",
			      "linux.resources.memory.disableOOMKiller", err) < 0)
			return (*err)->code;
		/* kmem limits are gone from current kernels: best effort. */
		if (r->mem_kernel != OCI_UNSET)
			write_i64(d, "memory.kmem.limit_in_bytes", r->mem_kernel, NULL, NULL);
		if (r->mem_kernel_tcp != OCI_UNSET &&
		    write_i64(d, "memory.kmem.tcp.limit_in_bytes", r->mem_kernel_tcp,
			      "linux.resources.memory.kernelTCP", err) < 0)
			return (*err)->code;
	} else if (!strcmp(ctrl, "cpu")) {
		const char *C = "linux.resources.cpu";
		if (r->cpu_shares != OCI_UNSET &&
		    write_i64(d, "cpu.shares", r->cpu_shares, "linux.resources.cpu.shares", err) < 0)
			return (*err)->code;
		if (r->cpu_period != OCI_UNSET &&
		    write_i64(d, "cpu.cfs_period_us", r->cpu_period, "linux.resources.cpu.period", err) < 0)
			return (*err)->code;
		if (r->cpu_quota != OCI_UNSET &&
		    write_i64(d, "cpu.cfs_quota_us", r->cpu_quota, "linux.resources.cpu.quota", err) < 0)
			return (*err)->code;
		if (r->cpu_rt_period != OCI_UNSET &&
		    write_i64(d, "cpu.rt_period_us", r->cpu_rt_period, C, err) < 0)
			return (*err)->code;
		if (r->cpu_rt_runtime != OCI_UNSET &&
		    write_i64(d, "cpu.rt_runtime_us", r->cpu_rt_runtime,
			      "linux.resources.cpu.realtimeRuntime", err) < 0)
			return (*err)->code;
		if (r->cpu_idle != OCI_UNSET &&
		    write_i64(d, "cpu.idle", r->cpu_idle, "linux.resources.cpu.idle", err) < 0)
			return (*err)->code;
	} else if (!strcmp(ctrl, "cpuset")) {
		if (r->cpus && r->cpus[0] &&
		    write_str(d, "cpuset.cpus", r->cpus, "linux.resources.cpu.cpus", err) < 0)
			return (*err)->code;
		if (r->mems && r->mems[0] &&
		    write_str(d, "cpuset.mems", r->mems, "linux.resources.cpu.mems", err) < 0)
			return (*err)->code;
	} else if (!strcmp(ctrl, "pids")) {
		if (r->pids_limit != OCI_UNSET) {
			char b[32] = "max";
			if (r->pids_limit > 0)
				snprintf(b, sizeof(b), "%lld", (long long)r->pids_limit);
			if (write_str(d, "pids.max", b, "linux.resources.pids.limit", err) < 0)
				return (*err)->code;
		}
	} else if (!strcmp(ctrl, "blkio")) {
		const char *wf = is_file(d, "blkio.weight") ? "blkio.weight" : "blkio.bfq.weight";
		if (r->blkio_weight != OCI_UNSET &&
		    write_i64(d, wf, r->blkio_weight, "linux.resources.blockIO.weight", err) < 0)
			return (*err)->code;
		if (r->blkio_leaf_weight != OCI_UNSET &&
		    write_i64(d, "blkio.leaf_weight", r->blkio_leaf_weight,
			      "linux.resources.blockIO.leafWeight", err) < 0)
			return (*err)->code;
		for (size_t i = 0; i < r->n_weight_devs; i++) {
			const struct oci_weight_dev *w = &r->weight_devs[i];
			char b[64], field[80];
			snprintf(field, sizeof(field), "linux.resources.blockIO.weightDevice[%zu]", i);
			if (w->weight != OCI_UNSET) {
				snprintf(b, sizeof(b), "%lld:%lld %lld", (long long)w->major,
					 (long long)w->minor, (long long)w->weight);
				if (write_str(d, is_file(d, "blkio.weight_device") ? "blkio.weight_device" : "blkio.bfq.weight_device",
					      b, field, err) < 0)
					return (*err)->code;
			}
			if (w->leaf_weight != OCI_UNSET) {
				snprintf(b, sizeof(b), "%lld:%lld %lld", (long long)w->major,
					 (long long)w->minor, (long long)w->leaf_weight);
				if (write_str(d, "blkio.leaf_weight_device", b, field, err) < 0)
					return (*err)->code;
			}
		}
		static const char *files[] = {"blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
					      "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"};
		for (int k = 0; k < 4; k++)
			for (size_t i = 0; i < r->n_throttle[k]; i++) {
				const struct oci_rate_dev *t = &r->throttle[k][i];
				char b[96];
				snprintf(b, sizeof(b), "%lld:%lld %llu", (long long)t->major,
					 (long long)t->minor, (unsigned long long)t->rate);
				if (write_str(d, files[k], b, "linux.resources.blockIO", err) < 0)
					return (*err)->code;
			}
	} else if (!strcmp(ctrl, "hugetlb")) {
		for (size_t i = 0; i < r->n_hugepages; i++) {
			_cleanup_free_ char *f = sp_xasprintf("hugetlb.%s.limit_in_bytes", r->hugepages[i].size);
			char field[64];
			snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu]", i);
			if (write_i64(d, f, (int64_t)r->hugepages[i].limit, field, err) < 0)
				return (*err)->code;
		}
	} else if (!strcmp(ctrl, "net_cls")) {
		if (r->net_classid != OCI_UNSET &&
		    write_i64(d, "net_cls.classid", r->net_classid,
			      "linux.resources.network.classID", err) < 0)
			return (*err)->code;
	} else if (!strcmp(ctrl, "devices")) {
		return apply_devices_v1(d, s, own, err);
	}
	return 0;
}

/* cgroup v2 conversions, the same formulas as runc and crun. */
static uint64_t shares_to_weight(int64_t s)
{
	return s == 0 ? 0 : 1 + ((uint64_t)(s - 2) * 9999) / 262142;
}

static int apply_v2(const struct oci_cgroup *cg, const char *d,
		    const struct oci_resources *r, sp_err **err)
{
	char b[128];
	bool hybrid = !cg->v2;
	if (!hybrid) {
		if (r->mem_limit != OCI_UNSET) {
			if (r->mem_limit < 0)
				snprintf(b, sizeof(b), "max");
			else
				snprintf(b, sizeof(b), "%lld", (long long)r->mem_limit);
			if (write_str(d, "memory.max", b, "linux.resources.memory.limit", err) < 0)
				return (*err)->code;
		}
		if (r->mem_swap != OCI_UNSET && is_file(d, "memory.swap.max")) {
			if (r->mem_swap < 0)
				snprintf(b, sizeof(b), "max");
			else if (r->mem_limit != OCI_UNSET && r->mem_limit > 0)
				snprintf(b, sizeof(b), "%lld", (long long)(r->mem_swap - r->mem_limit));
			else
				return sp_error(err, SP_ERR_INVALID,
						"linux.resources.memory.swap: needs memory.limit on cgroup v2");
			if (write_str(d, "memory.swap.max", b, "linux.resources.memory.swap", err) < 0)
				return (*err)->code;
		}
		if (r->mem_reservation != OCI_UNSET &&
		    write_i64(d, "memory.low", r->mem_reservation,
			      "linux.resources.memory.reservation", err) < 0)
			return (*err)->code;
		if (r->cpu_shares != OCI_UNSET &&
		    write_i64(d, "cpu.weight", (int64_t)shares_to_weight(r->cpu_shares),
			      "linux.resources.cpu.shares", err) < 0)
			return (*err)->code;
		if (r->cpu_quota != OCI_UNSET || r->cpu_period != OCI_UNSET) {
			int64_t period = r->cpu_period != OCI_UNSET ? r->cpu_period : 100000;
			if (r->cpu_quota != OCI_UNSET && r->cpu_quota > 0)
				snprintf(b, sizeof(b), "%lld %lld", (long long)r->cpu_quota, (long long)period);
			else
				snprintf(b, sizeof(b), "max %lld", (long long)period);
			if (write_str(d, "cpu.max", b, "linux.resources.cpu.quota", err) < 0)
				return (*err)->code;
		}
		if (r->cpu_idle != OCI_UNSET &&
		    write_i64(d, "cpu.idle", r->cpu_idle, "linux.resources.cpu.idle", err) < 0)
			return (*err)->code;
		if (r->cpus && r->cpus[0] &&
		    write_str(d, "cpuset.cpus", r->cpus, "linux.resources.cpu.cpus", err) < 0)
			return (*err)->code;
		if (r->mems && r->mems[0] &&
		    write_str(d, "cpuset.mems", r->mems, "linux.resources.cpu.mems", err) < 0)
			return (*err)->code;
		if (r->pids_limit != OCI_UNSET) {
			snprintf(b, sizeof(b), "max");
			if (r->pids_limit > 0)
				snprintf(b, sizeof(b), "%lld", (long long)r->pids_limit);
			if (write_str(d, "pids.max", b, "linux.resources.pids.limit", err) < 0)
				return (*err)->code;
		}
		if (r->blkio_weight != OCI_UNSET) {
			uint64_t w = 1 + ((uint64_t)(r->blkio_weight - 10) * 9999) / 990;
			snprintf(b, sizeof(b), "default %llu", (unsigned long long)w);
			const char *f = is_file(d, "io.weight") ? "io.weight" : "io.bfq.weight";
			if (write_str(d, f, b, "linux.resources.blockIO.weight", err) < 0)
				return (*err)->code;
		}
		static const char *keys[] = {"rbps", "wbps", "riops", "wiops"};
		for (int k = 0; k < 4; k++)
			for (size_t i = 0; i < r->n_throttle[k]; i++) {
				const struct oci_rate_dev *t = &r->throttle[k][i];
				snprintf(b, sizeof(b), "%lld:%lld %s=%llu", (long long)t->major,
					 (long long)t->minor, keys[k], (unsigned long long)t->rate);
				if (write_str(d, "io.max", b, "linux.resources.blockIO", err) < 0)
					return (*err)->code;
			}
	}
	/* hugetlb: on the unified hierarchy unless a v1 one serves it. */
	if (!has_v1(cg, "hugetlb")) {
		for (size_t i = 0; i < r->n_hugepages; i++) {
			_cleanup_free_ char *f = sp_xasprintf("hugetlb.%s.max", r->hugepages[i].size);
			char field[64];
			snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu]", i);
			if (!is_file(d, f))
				return sp_error(err, SP_ERR_UNSUPPORTED,
						"%s: no hugetlb controller for page size %s here",
						field, r->hugepages[i].size);
			if (write_i64(d, f, (int64_t)r->hugepages[i].limit, field, err) < 0)
				return (*err)->code;
		}
	}
	if (r->unified) {
		const char *k;
		json_t *v;
		json_object_foreach(r->unified, k, v) {
			char field[300];
			snprintf(field, sizeof(field), "linux.resources.unified.%s", k);
			if (!is_file(d, k))
				return sp_error(err, SP_ERR_UNSUPPORTED,
						"%s: no such cgroup file here (is its controller enabled?)",
						field);
			if (write_str(d, k, json_string_value(v), field, err) < 0)
				return (*err)->code;
		}
	}
	return 0;
}

/* The unified hierarchy's directory, or NULL. */
static const char *unified_dir(const struct oci_cgroup *cg)
{
	for (size_t i = 0; i < cg->n; i++)
		if (!cg->ctrls[i][0])
			return cg->dirs[i];
	return NULL;
}

int oci_cgroup_apply(struct oci_cgroup *cg, const struct oci_spec *s,
		     const struct oci_spec *own, sp_err **err)
{
	const struct oci_resources *r = &s->res;
	bool update = own != NULL;
	if (!own)
		own = s;
	bool v2dir = false;
	for (size_t i = 0; r->any && i < cg->n; i++) {
		int rc = cg->ctrls[i][0] ? apply_v1(cg->dirs[i], cg->ctrls[i], s, own, err)
					 : apply_v2(cg, cg->dirs[i], r, err);
		if (rc < 0)
			return rc;
		v2dir |= !cg->ctrls[i][0];
	}
	/* Without a v1 devices controller, the device rules are an eBPF
	 * program on the unified hierarchy. It is attached at create even
	 * without rules (default deny but the standard devices, as runc):
	 * in the guest the agent is the trusted base and a container must
	 * not open its disks. */
	if ((update ? r->has_devices : true) && !has_v1(cg, "devices")) {
		const char *u = unified_dir(cg);
		if (!u && r->n_dev_rules)
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"linux.resources.devices: no devices controller and no cgroup "
					"v2 hierarchy here to enforce device rules");
		if (u && oci_devices_apply_v2(u, r->dev_rules, r->n_dev_rules, own->devices,
					 own->n_devices, err) < 0)
			return (*err)->code;
	}
	if (!r->any)
		return 0;
	if (!v2dir && r->unified && json_object_size(r->unified))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"linux.resources.unified: needs a cgroup v2 hierarchy");
	if (!cg->v2 && r->net_classid != OCI_UNSET && !has_v1(cg, "net_cls"))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"linux.resources.network.classID: no net_cls controller is mounted");
	if (!cg->v2 && r->n_hugepages && !has_v1(cg, "hugetlb") && !v2dir)
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"linux.resources.hugepageLimits: no hugetlb controller");
	return 0;
}

static uint64_t kv(const char *dir, const char *file, const char *key);

/* The directory that freezes: a v1 freezer hierarchy, else the unified
 * one (cgroup.freeze, kernel 5.2+). *v1 says which. */
static const char *freezer_dir(const struct oci_cgroup *cg, bool *v1)
{
	for (size_t i = 0; i < cg->n; i++)
		if (!strcmp(cg->ctrls[i], "freezer")) {
			*v1 = true;
			return cg->dirs[i];
		}
	*v1 = false;
	const char *u = unified_dir(cg);
	return u && is_file(u, "cgroup.freeze") ? u : NULL;
}

bool oci_cgroup_frozen(const struct oci_cgroup *cg)
{
	bool v1;
	const char *d = freezer_dir(cg, &v1);
	char b[64];
	if (!d || read_str(d, v1 ? "freezer.state" : "cgroup.freeze", b, sizeof(b)) < 0)
		return false;
	return v1 ? strcmp(b, "THAWED") != 0 : !strcmp(b, "1");
}

int oci_cgroup_freeze(struct oci_cgroup *cg, bool freeze, sp_err **err)
{
	bool v1;
	const char *d = freezer_dir(cg, &v1);
	if (!d)
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"cgroups: no freezer here (neither a v1 freezer hierarchy nor "
				"cgroup.freeze in %s)",
				cg->path ? cg->path : "?");
	const char *file = v1 ? "freezer.state" : "cgroup.freeze";
	const char *want = v1 ? (freeze ? "FROZEN" : "THAWED") : (freeze ? "1" : "0");
	/* Tasks freeze asynchronously (v1 passes through FREEZING, v2
	 * reports "frozen 1" in cgroup.events): wait up to ~5 s, writing
	 * again on v1 as runc does, since a task forking meanwhile can keep
	 * the state at FREEZING. */
	for (int tries = 0; tries < 1000; tries++) {
		if (tries % 50 == 0 && write_str(d, file, want, "cgroups freezer", err) < 0)
			return (*err)->code;
		char b[64];
		bool done;
		if (v1) {
			done = read_str(d, file, b, sizeof(b)) == 0 && !strcmp(b, want);
		} else {
			uint64_t frozen = kv(d, "cgroup.events", "frozen");
			done = freeze ? frozen == 1 : frozen == 0;
		}
		if (done)
			return 0;
		nanosleep(&(struct timespec){0, 5000000}, NULL);
	}
	if (freeze) {
		/* Leave it running rather than half frozen. */
		write_str(d, file, v1 ? "THAWED" : "0", "cgroups freezer", NULL);
	}
	return sp_error(err, SP_ERR_TIMEOUT, "cgroups: %s did not become %s within 5 s", d,
			freeze ? "frozen" : "thawed");
}

int oci_cgroup_enter(struct oci_cgroup *cg, pid_t pid, sp_err **err)
{
	char b[32];
	snprintf(b, sizeof(b), "%d", pid);
	for (size_t i = 0; i < cg->n; i++)
		if (write_str(cg->dirs[i], "cgroup.procs", b, "linux.cgroupsPath", err) < 0)
			return (*err)->code;
	return 0;
}

static const char *procs_dir(const struct oci_cgroup *cg)
{
	for (size_t i = 0; i < cg->n; i++)
		if (!strcmp(cg->ctrls[i], "pids") || !strcmp(cg->ctrls[i], "memory"))
			return cg->dirs[i];
	return cg->n ? cg->dirs[0] : NULL;
}

int oci_cgroup_pids(struct oci_cgroup *cg, pid_t **out, size_t *n, sp_err **err)
{
	*out = NULL;
	*n = 0;
	const char *d = procs_dir(cg);
	if (!d)
		return 0;
	_cleanup_free_ char *p = sp_xasprintf("%s/cgroup.procs", d);
	_cleanup_fclose_ FILE *f = fopen(p, "re");
	if (!f)
		return sp_error_sys(err, errno, "cgroups: reading %s", p);
	long v;
	size_t cap = 0;
	while (fscanf(f, "%ld", &v) == 1) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*out = sp_xrealloc(*out, cap * sizeof(pid_t));
		}
		(*out)[(*n)++] = (pid_t)v;
	}
	return 0;
}

int oci_cgroup_destroy(struct oci_cgroup *cg, sp_err **err)
{
	/* The leaves first; then the parents this process made (undo). */
	int rc = 0;
	for (size_t i = 0; i < cg->n; i++) {
		for (int tries = 0; tries < 200; tries++) {
			if (rmdir(cg->dirs[i]) == 0 || errno == ENOENT)
				break;
			if (errno != EBUSY || tries == 199) {
				rc = sp_error_sys(err, errno, "cgroups: removing %s", cg->dirs[i]);
				break;
			}
			/* Tasks that were just killed leave the cgroup late. */
			pid_t *pids;
			size_t n;
			if (oci_cgroup_pids(cg, &pids, &n, NULL) == 0) {
				for (size_t k = 0; k < n; k++)
					kill(pids[k], SIGKILL);
				free(pids);
			}
			nanosleep(&(struct timespec){0, 5000000}, NULL);
		}
	}
	for (size_t i = cg->n_made; i > 0; i--)
		rmdir(cg->made[i - 1]);
	return rc;
}

static uint64_t kv(const char *dir, const char *file, const char *key)
{
	_cleanup_free_ char *p = sp_xasprintf("%s/%s", dir, file);
	_cleanup_fclose_ FILE *f = fopen(p, "re");
	char k[128];
	unsigned long long v;
	while (f && fscanf(f, "%127s %llu", k, &v) == 2)
		if (!strcmp(k, key))
			return v;
	return 0;
}

static uint64_t num(const char *dir, const char *file)
{
	char b[64];
	if (read_str(dir, file, b, sizeof(b)) < 0 || !strcmp(b, "max"))
		return 0;
	return strtoull(b, NULL, 10);
}

int oci_cgroup_stats(struct oci_cgroup *cg, sp_container_stats *st, sp_err **err)
{
	memset(st, 0, sizeof(*st));
	long hz = sysconf(_SC_CLK_TCK);
	if (hz <= 0)
		hz = 100;
	bool any = false;
	for (size_t i = 0; i < cg->n; i++) {
		const char *d = cg->dirs[i], *c = cg->ctrls[i];
		if (access(d, F_OK) != 0)
			continue;
		any = true;
		if (!c[0] && cg->v2) {
			st->cpu_usage_ns = kv(d, "cpu.stat", "usage_usec") * 1000;
			st->cpu_user_ns = kv(d, "cpu.stat", "user_usec") * 1000;
			st->cpu_system_ns = kv(d, "cpu.stat", "system_usec") * 1000;
			st->cpu_periods = kv(d, "cpu.stat", "nr_periods");
			st->cpu_throttled_periods = kv(d, "cpu.stat", "nr_throttled");
			st->cpu_throttled_ns = kv(d, "cpu.stat", "throttled_usec") * 1000;
			st->mem_usage = num(d, "memory.current");
			st->mem_max_usage = num(d, "memory.peak");
			st->mem_limit = num(d, "memory.max");
			st->mem_cache = kv(d, "memory.stat", "file");
			st->mem_rss = kv(d, "memory.stat", "anon");
			st->mem_swap = num(d, "memory.swap.current");
			st->oom_events = kv(d, "memory.events", "oom");
			st->oom_kills = kv(d, "memory.events", "oom_kill");
			st->pids_current = num(d, "pids.current");
			st->pids_limit = num(d, "pids.max");
		} else if (!strcmp(c, "cpuacct")) {
			st->cpu_usage_ns = num(d, "cpuacct.usage");
			st->cpu_user_ns = kv(d, "cpuacct.stat", "user") * (1000000000ULL / (uint64_t)hz);
			st->cpu_system_ns = kv(d, "cpuacct.stat", "system") * (1000000000ULL / (uint64_t)hz);
		} else if (!strcmp(c, "cpu")) {
			st->cpu_periods = kv(d, "cpu.stat", "nr_periods");
			st->cpu_throttled_periods = kv(d, "cpu.stat", "nr_throttled");
			st->cpu_throttled_ns = kv(d, "cpu.stat", "throttled_time");
		} else if (!strcmp(c, "memory")) {
			st->mem_usage = num(d, "memory.usage_in_bytes");
			st->mem_max_usage = num(d, "memory.max_usage_in_bytes");
			st->mem_limit = num(d, "memory.limit_in_bytes");
			st->mem_cache = kv(d, "memory.stat", "cache");
			st->mem_rss = kv(d, "memory.stat", "rss");
			st->mem_swap = kv(d, "memory.stat", "swap");
			st->oom_kills = kv(d, "memory.oom_control", "oom_kill");
			st->oom_events = st->oom_kills;
		} else if (!strcmp(c, "pids")) {
			st->pids_current = num(d, "pids.current");
			st->pids_limit = num(d, "pids.max");
		}
	}
	if (!any)
		return sp_error(err, SP_ERR_NOT_FOUND, "cgroups: %s does not exist any more",
				cg->path ? cg->path : "?");
	return 0;
}

void oci_cgroup_clear(struct oci_cgroup *cg)
{
	for (size_t i = 0; i < cg->n; i++) {
		free(cg->dirs[i]);
		free(cg->ctrls[i]);
	}
	for (size_t i = 0; i < cg->n_made; i++)
		free(cg->made[i]);
	free(cg->dirs);
	free(cg->ctrls);
	free(cg->made);
	free(cg->path);
	memset(cg, 0, sizeof(*cg));
}
