/* SPDX-License-Identifier: Apache-2.0 */
/* The container engine's private structures: the parsed OCI runtime spec
 * and the helpers each concern (namespaces, mounts, cgroups, ...) exports
 * to the orchestration in container.c. */
#ifndef SP_OCI_INTERNAL_H
#define SP_OCI_INTERNAL_H

#include <sys/types.h>

#include "sealpod/json.h"
#include "sealpod/oci.h"

/* "not set" for optional integers in the spec. */
#define OCI_UNSET INT64_MIN

struct oci_idmap {
	uint32_t container_id, host_id, size;
};

struct oci_ns {
	int type;   /* CLONE_NEW* */
	char *path; /* join this one, or NULL to create */
};

struct oci_mount {
	char *dest, *type, *source;
	unsigned long flags;      /* MS_* applied with the mount */
	unsigned long clear;      /* flags the options turned off */
	unsigned long propagation[4];
	size_t n_propagation;
	bool bind, rec;
	char *data; /* filesystem-specific options, comma separated */
};

struct oci_rlimit {
	int resource;
	uint64_t soft, hard;
};

struct oci_device {
	char *path;
	char type; /* c, b, u, p */
	int64_t major, minor;
	int64_t mode, uid, gid; /* OCI_UNSET when absent */
};

struct oci_dev_rule {
	bool allow;
	char type;            /* a, c, b */
	int64_t major, minor; /* -1: any */
	char access[4];       /* subset of "rwm" */
};

struct oci_hook {
	char *path;
	char **args, **env;
	int64_t timeout; /* seconds, 0 = none */
};

struct oci_hooks {
	struct oci_hook *prestart, *create_runtime, *create_container,
		*start_container, *poststart, *poststop;
	size_t n_prestart, n_create_runtime, n_create_container,
		n_start_container, n_poststart, n_poststop;
};

struct oci_caps {
	/* Absent sets are empty: a process never keeps the runtime's. */
	uint64_t bounding, effective, inheritable, permitted, ambient;
};

struct oci_process {
	bool terminal;
	unsigned console_h, console_w;
	uint32_t uid, gid;
	uint32_t *gids;
	size_t n_gids;
	int64_t umask; /* OCI_UNSET: 0022 */
	char **env, **args;
	char *cwd;
	struct oci_caps caps;
	bool nnp;
	int64_t oom_score_adj;
	struct oci_rlimit *rlimits;
	size_t n_rlimits;
	char *apparmor, *selinux;
};

struct oci_weight_dev {
	int64_t major, minor, weight, leaf_weight;
};
struct oci_rate_dev {
	int64_t major, minor;
	uint64_t rate;
};
struct oci_hugepage {
	char *size; /* "2MB" */
	uint64_t limit;
};

struct oci_resources {
	int64_t mem_limit, mem_reservation, mem_swap, mem_kernel, mem_kernel_tcp,
		mem_swappiness;
	bool mem_disable_oom_killer, mem_use_hierarchy_set;
	int64_t cpu_shares, cpu_quota, cpu_period, cpu_rt_runtime,
		cpu_rt_period, cpu_idle;
	char *cpus, *mems;
	int64_t pids_limit;
	int64_t blkio_weight, blkio_leaf_weight;
	struct oci_weight_dev *weight_devs;
	size_t n_weight_devs;
	struct oci_rate_dev *throttle[4]; /* read bps, write bps, read iops, write iops */
	size_t n_throttle[4];
	struct oci_hugepage *hugepages;
	size_t n_hugepages;
	int64_t net_classid;
	struct oci_dev_rule *dev_rules;
	size_t n_dev_rules;
	bool has_devices; /* linux.resources.devices present (update) */
	json_t *unified; /* borrowed from the spec JSON */
	bool any;        /* linux.resources present */
};

struct oci_sysctl {
	char *key, *value;
};

struct oci_spec {
	json_t *json; /* the whole document; other members borrow nothing */
	char *version;
	char *root_path;
	bool root_readonly;
	char *hostname, *domainname;
	struct oci_process process;
	bool has_process;
	struct oci_mount *mounts;
	size_t n_mounts;
	struct oci_hooks hooks;
	struct oci_ns *ns;
	size_t n_ns;
	struct oci_idmap *uid_map, *gid_map;
	size_t n_uid_map, n_gid_map;
	struct oci_device *devices;
	size_t n_devices;
	struct oci_resources res;
	char *cgroups_path;
	struct oci_sysctl *sysctls;
	size_t n_sysctls;
	char **masked, **readonly;
	unsigned long rootfs_propagation; /* 0 = default (rslave) */
	char *mount_label;
	json_t *seccomp; /* linux.seccomp, validated, borrowed */
	int64_t time_offsets[2][2]; /* monotonic, boottime: secs, nanosecs */
	bool has_time_offsets;
	bool has_personality;
	unsigned long personality;
};

/* spec.c */
int oci_spec_parse(struct oci_spec **out, const void *data, size_t len,
		   sp_err **err);
int oci_process_parse(struct oci_process *p, const json_t *j,
		      const char *path, sp_err **err);
void oci_process_clear(struct oci_process *p);
void oci_spec_free(struct oci_spec *s);
bool oci_spec_has_ns(const struct oci_spec *s, int type, const char **path);
const char *oci_ns_name(int type);

/* caps.c */
int oci_caps_parse(uint64_t *out, const json_t *arr, const char *path,
		   sp_err **err);
/* In the child: drops the bounding set (before changing uid). */
int oci_caps_drop_bounding(const struct oci_caps *c, char *msg, size_t n);
/* In the child, after changing uid: sets the other four sets. */
int oci_caps_apply(const struct oci_caps *c, char *msg, size_t n);
/* A JSON array of every capability name libcap knows (for features). */
json_t *oci_caps_all(void);

/* seccomp.c: validation at parse time, compilation to a BPF program in
 * the parent, loading in the child. */
int oci_seccomp_validate(const json_t *j, sp_err **err);
struct oci_bpf {
	void *prog; /* struct sock_filter[] */
	size_t n;
	unsigned flags; /* SECCOMP_FILTER_FLAG_* */
};
int oci_seccomp_compile(struct oci_bpf *out, const json_t *j, sp_err **err);
void oci_bpf_clear(struct oci_bpf *b);
int oci_seccomp_load(const struct oci_bpf *b, char *msg, size_t n);
json_t *oci_seccomp_features(void);

/* cgroups.c */
struct oci_cgroup {
	bool v2;      /* unified hierarchy only */
	char *path;   /* absolute within each hierarchy: "/sealpod/id" */
	char **dirs;  /* every directory this container uses */
	char **ctrls; /* controller name per dir ("" for the unified one) */
	size_t n;
	size_t n_created; /* dirs[0..] this process made, for undo */
	char **made;      /* every directory made, for undo (deepest last) */
	size_t n_made;
};
int oci_cgroup_setup(struct oci_cgroup *cg, const char *spec_path,
		     const char *id, sp_err **err);
/* Writes the limits of s. own is NULL at create; for an update it is the
 * container's own spec (whose linux.devices stay allowed), and device
 * rules change only if s has linux.resources.devices. */
int oci_cgroup_apply(struct oci_cgroup *cg, const struct oci_spec *s,
		     const struct oci_spec *own, sp_err **err);
/* The freezer (v1 freezer.state or v2 cgroup.freeze). */
int oci_cgroup_freeze(struct oci_cgroup *cg, bool freeze, sp_err **err);
bool oci_cgroup_frozen(const struct oci_cgroup *cg);
int oci_cgroup_enter(struct oci_cgroup *cg, pid_t pid, sp_err **err);
/* Removes the directories, waiting briefly for dying tasks. */
int oci_cgroup_destroy(struct oci_cgroup *cg, sp_err **err);
int oci_cgroup_pids(struct oci_cgroup *cg, pid_t **out, size_t *n,
		    sp_err **err);
int oci_cgroup_stats(struct oci_cgroup *cg, sp_container_stats *st,
		     sp_err **err);
void oci_cgroup_clear(struct oci_cgroup *cg);
/* Recomputes dirs for an existing container (after load). */
int oci_cgroup_open(struct oci_cgroup *cg, const char *abs_path, sp_err **err);
bool oci_cgroup_is_v2(void);

/* devices.c: cgroup v2 device control with an eBPF program. */
extern const struct oci_dev_rule oci_default_dev_rules[];
extern const size_t oci_n_default_dev_rules;
/* The spec's rules, then the default devices and linux.devices allowed;
 * free(*out). */
void oci_dev_rules_effective(struct oci_dev_rule **out, size_t *n,
			     const struct oci_dev_rule *rules, size_t n_rules,
			     const struct oci_device *devs, size_t n_devs);
struct oci_dev_prog {
	void *insns; /* struct bpf_insn[] */
	size_t n;
};
int oci_dev_prog_build(struct oci_dev_prog *out, const struct oci_dev_rule *rules,
		       size_t n, sp_err **err);
void oci_dev_prog_clear(struct oci_dev_prog *p);
/* Loads the program and attaches it to the cgroup directory, replacing
 * the device programs attached there before. */
int oci_dev_prog_attach(const char *cgdir, const struct oci_dev_prog *prog, sp_err **err);
int oci_devices_apply_v2(const char *cgdir, const struct oci_dev_rule *rules, size_t n_rules,
			 const struct oci_device *devs, size_t n_devs, sp_err **err);

/* mounts.c: run in the container's init, in its new mount namespace.
 * Errors are written into msg. */
struct oci_child_ctx;
int oci_rootfs_prepare(const struct oci_spec *s, const char *rootfs,
		       struct oci_child_ctx *cx, char *msg, size_t n);
int oci_rootfs_pivot(const struct oci_spec *s, const char *rootfs, char *msg,
		     size_t n);
int oci_rootfs_finish(const struct oci_spec *s, char *msg, size_t n);
int oci_mount_options_parse(struct oci_mount *m, const json_t *opts,
			    const char *path, sp_err **err);
json_t *oci_mount_options_all(void);

/* process.c: in the child, the last steps before execve. */
struct oci_child_ctx {
	const struct oci_spec *spec;
	const struct oci_process *proc;
	const struct oci_bpf *bpf;
	const struct oci_cgroup *cg;
	const char *rootfs;
	int stdio[3];
	int console_sock; /* -1 or a connected unix socket */
	int pty_slave;    /* -1 or the pty slave, made by the child */
	bool in_userns;
	bool is_init;
	unsigned preserve_fds;
	char *exe; /* resolved executable */
};
int oci_child_open_terminal(struct oci_child_ctx *cx, const char *devpts_ptmx,
			    char *msg, size_t n);
int oci_child_prepare_process(struct oci_child_ctx *cx, char *msg, size_t n);
int oci_child_resolve_exe(struct oci_child_ctx *cx, char *msg, size_t n);
/* Never returns on success. */
int oci_child_exec(struct oci_child_ctx *cx, char *msg, size_t n);
int oci_set_rlimits(const struct oci_process *p, char *msg, size_t n);
int oci_rlimit_from_name(const char *name);

/* hooks.c */
int oci_hooks_run(const struct oci_hook *h, size_t n, const char *kind,
		  const char *state_json, sp_err **err);
int oci_hooks_parse(struct oci_hooks *h, const json_t *j, sp_err **err);
void oci_hooks_clear(struct oci_hooks *h);

/* state.c */
struct sp_container {
	char *id, *dir, *bundle, *rootfs, *created;
	pid_t pid;
	uint64_t start_time; /* /proc/pid/stat field 22, guards pid reuse */
	struct oci_spec *spec;
	struct oci_cgroup cg;
	bool own_pidns;
	int exit_status; /* once waited, else -1 */
};
int oci_state_save(const sp_container *c, sp_err **err);
int oci_state_load(sp_container **out, const char *root, const char *id,
		   sp_err **err);
int oci_proc_start_time(pid_t pid, uint64_t *out);
char *oci_state_json(const sp_container *c, const char *status);
bool oci_id_valid(const char *id);
char *oci_now_rfc3339(void);

/* A bounded message for child errors: "what: why". */
int oci_msg(char *msg, size_t n, int errnum, const char *fmt, ...)
	SP_PRINTF(4, 5);

#endif
