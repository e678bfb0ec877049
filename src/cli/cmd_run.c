/* SPDX-License-Identifier: Apache-2.0 */
/* `sealpod run FILE.yaml`: one Kubernetes pod in a confidential UVM on this
 * machine. Reads the pod (or a workload's pod template), takes its policy
 * from the annotation or generates one, boots the UVM with HOST_DATA =
 * SHA-256(policy) through the sandbox controller (the same one the
 * containerd shim uses), runs init containers then the others, streams
 * their output with each container's name in front, and exits with the
 * pod's status. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "run.h"
#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/guest.h"
#include "sealpod/json.h"
#include "sealpod/log.h"
#include "sealpod/policy.h"
#include "sealpod/sandbox.h"

#define SEC 1000000000ull

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealpod run FILE.yaml [options]\n"
		"  --image-dir DIR      OCI image layout holding the pod's images (offline)\n"
		"  --registry URL       pull images from this registry (a mirror) inside the UVM\n"
		"                       (default: each image's own registry, by its reference)\n"
		"  --registry-ca FILE   the https registry's CA (PEM); the generated policy pins it\n"
		"  --authfile FILE      registry credentials (containers-auth.json or docker config.json;\n"
		"                       default: podman's search order)\n"
		"  --tee sim|snp|none   TEE (default sim; snp needs SEV-SNP hardware)\n"
		"  --accel auto|kvm|tcg accelerator (default auto: KVM if it can run guests)\n"
		"  --attest             fetch a report over a fresh nonce, verify it, print the claims\n"
		"  --guest-dir DIR      the guest image (default: built on first use)\n"
		"  --vcpus N           UVM vCPUs (default 1)\n"
		"  --memory MiB        UVM memory (default 256 plus the containers' memory limits)\n"
		"  --grace SECONDS      SIGTERM-to-SIGKILL grace on Ctrl-C (default: the pod's\n"
		"                       terminationGracePeriodSeconds, else 30)\n"
		"  --name NAME          the pod's name here (default: metadata.name)\n"
		"  --network user|none  the pod's network (default user: QEMU user networking,\n"
		"                       egress through the host; none: loopback only)\n"
		"  -p, --publish [IP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]\n"
		"                       publish a port of the pod on the host (repeatable; the\n"
		"                       YAML's ports[].hostPort are published too)\n"
		"  --detach             run in the background; print the name once the\n"
		"                       containers run (then: sealpod ps/logs/exec/stop)\n");
}

/* ---- output ------------------------------------------------------------- */

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

/* Writes complete lines prefixed with the container's name; a partial last
 * line is written when the stream ends. */
void run_emit(struct run_live *pod, struct run_ctr *c, int stream, const uint8_t *data,
	      size_t len)
{
	bool nl = len == 0 || data[len - 1] != '\n';
	pthread_mutex_lock(&out_mu);
	if (!pod->quiet) {
		FILE *f = stream == SP_STREAM_STDERR ? stderr : stdout;
		fprintf(f, "%s | ", c->name);
		fwrite(data, 1, len, f);
		if (nl)
			fputc('\n', f);
		fflush(f);
	}
	if (c->logfd >= 0) {
		_cleanup_free_ char *prefix = sp_xasprintf("%s | ", c->name);
		struct iovec iov[3] = {{prefix, strlen(prefix)}, {(void *)data, len},
				       {"\n", nl ? 1 : 0}};
		if (writev(c->logfd, iov, 3) < 0) {
			/* A full disk loses log lines, not the pod. */
		}
	}
	pthread_mutex_unlock(&out_mu);
}

static void *pump_thread(void *arg)
{
	struct run_pump *p = arg;
	_cleanup_buf_ sp_buf line = SP_BUF_INIT;
	for (;;) {
		_cleanup_free_ uint8_t *data = NULL;
		size_t len = 0;
		_cleanup_err_ sp_err *err = NULL;
		if (sp_sandbox_read(p->pod->sb, p->c->id, "", p->stream, &data, &len, &err) < 0) {
			/* A policy that forbids reading this stream says so
			 * once; the container still runs. */
			if (err->code != SP_ERR_NOT_FOUND)
				sp_log_warn("%s: %s", p->c->name, sp_err_msg(err));
			break;
		}
		if (len == 0)
			break;
		sp_buf_put(&line, data, len);
		size_t start = 0;
		for (size_t i = 0; i < line.len; i++) {
			if (line.data[i] == '\n') {
				run_emit(p->pod, p->c, p->stream, line.data + start, i + 1 - start);
				start = i + 1;
			}
		}
		memmove(line.data, line.data + start, line.len - start);
		line.len -= start;
	}
	if (line.len)
		run_emit(p->pod, p->c, p->stream, line.data, line.len);
	return NULL;
}

/* ---- containers --------------------------------------------------------- */

struct waitarg {
	struct run_live *pod;
	struct run_ctr *c;
};

static void *wait_thread(void *arg)
{
	struct waitarg *w = arg;
	int status = 255;
	_cleanup_err_ sp_err *err = NULL;
	if (sp_sandbox_wait(w->pod->sb, w->c->id, "", &status, &err) < 0) {
		sp_log_error("%s: %s", w->c->name, sp_err_msg(err));
		status = 255;
	}
	pthread_mutex_lock(&w->pod->mu);
	w->c->exited = true;
	w->c->status = status;
	run_state_write(w->pod->st, w->pod);
	pthread_cond_broadcast(&w->pod->cv);
	pthread_mutex_unlock(&w->pod->mu);
	free(w);
	return NULL;
}

static int create_and_start(struct run_live *pod, struct run_ctr *c, sp_err **err)
{
	_cleanup_json_ json_t *spec = NULL;
	_cleanup_free_ char *image = NULL, *resolved = NULL;
	/* The values the policy leaves to the runtime: the hostname. */
	_cleanup_json_ json_t *host = json_pack("{s:s}", "hostname", pod->hostname);
	if (sp_sandbox_policy_container(pod->sb, c->name, host, &spec, &image, &resolved, err) < 0)
		return sp_error_wrap(err, "container %s", c->name);
	run_progress("creating container %s (%s): the guest pulls and verifies its image", c->name,
		     image);
	sp_container_opts o = {.version = 1, .id = c->id, .spec = spec, .image = image,
			       .name = c->name, .init = c->init};
	if (sp_sandbox_create_container(pod->sb, &o, err) < 0)
		return sp_error_wrap(err, "container %s", c->name);
	/* Execs (probes, `sealpod exec`) run as this process does. */
	c->process = json_incref(json_object_get(spec, "process"));
	pthread_mutex_lock(&pod->mu);
	c->created = true;
	run_state_write(pod->st, pod);
	pthread_mutex_unlock(&pod->mu);
	for (int s = 0; s < 2; s++) {
		struct run_pump *p = &c->pumps[s];
		*p = (struct run_pump){.pod = pod, .c = c,
				       .stream = s == 0 ? SP_STREAM_STDOUT : SP_STREAM_STDERR};
		if (pthread_create(&p->thread, NULL, pump_thread, p) == 0)
			p->started = true;
	}
	if (sp_sandbox_start_container(pod->sb, c->id, err) < 0)
		return sp_error_wrap(err, "container %s", c->name);
	pthread_mutex_lock(&pod->mu);
	c->started = true;
	run_state_write(pod->st, pod);
	pthread_mutex_unlock(&pod->mu);
	struct waitarg *w = sp_xzalloc(sizeof(*w));
	w->pod = pod;
	w->c = c;
	if (pthread_create(&c->waiter, NULL, wait_thread, w) != 0) {
		free(w);
		return sp_error_sys(err, errno, "container %s: start a waiter thread", c->name);
	}
	c->waiting = true;
	run_probe_start(pod, c);
	return 0;
}

static void join_container(struct run_ctr *c)
{
	if (c->waiting) {
		pthread_join(c->waiter, NULL);
		c->waiting = false;
	}
	run_probe_join(c);
	for (int s = 0; s < 2; s++) {
		if (c->pumps[s].started) {
			pthread_join(c->pumps[s].thread, NULL);
			c->pumps[s].started = false;
		}
	}
}

volatile sig_atomic_t run_interrupted;

static void on_signal(int sig)
{
	run_interrupted = sig;
}

static void timed_wait(struct run_live *pod, uint64_t ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)ns;
	while (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&pod->cv, &pod->mu, &ts);
}

/* Waits until every container in [from, to) has exited; on Ctrl-C,
 * SIGTERM or `sealpod stop` sends SIGTERM to those still running and
 * SIGKILL after the grace period. */
static void wait_all(struct run_live *pod, size_t from, size_t to)
{
	uint64_t kill_at = 0;
	bool termed = false, killed = false;
	pthread_mutex_lock(&pod->mu);
	for (;;) {
		bool all = true;
		for (size_t i = from; i < to; i++)
			if (pod->ctrs[i].started && !pod->ctrs[i].exited)
				all = false;
		if (all)
			break;
		if (run_interrupted && !termed) {
			termed = true;
			kill_at = sp_now_ns() + (uint64_t)pod->grace_s * SEC;
			pod->phase = "stopping";
			run_state_write(pod->st, pod);
			run_progress("%s: stopping the pod (SIGTERM, then SIGKILL after %u s)",
				     run_interrupted == SIGINT ? "interrupted" : "stop requested",
				     pod->grace_s);
			for (size_t i = from; i < to; i++)
				if (pod->ctrs[i].started && !pod->ctrs[i].exited)
					sp_sandbox_signal(pod->sb, pod->ctrs[i].id, "", SIGTERM, NULL);
		}
		if (termed && !killed && sp_now_ns() >= kill_at) {
			killed = true;
			for (size_t i = from; i < to; i++)
				if (pod->ctrs[i].started && !pod->ctrs[i].exited)
					sp_sandbox_signal(pod->sb, pod->ctrs[i].id, "", SIGKILL, NULL);
		}
		timed_wait(pod, 100000000);
	}
	pthread_mutex_unlock(&pod->mu);
	for (size_t i = from; i < to; i++)
		join_container(&pod->ctrs[i]);
}

/* No new execs; waits (bounded) for those in flight, which end when their
 * container is removed, so the sandbox can go. */
static void close_execs(struct run_live *pod)
{
	pthread_mutex_lock(&pod->mu);
	pod->closed = true;
	pthread_cond_broadcast(&pod->cv);
	uint64_t until = sp_now_ns() + 30 * SEC;
	while (pod->busy > 0 && sp_now_ns() < until)
		timed_wait(pod, 100000000);
	pthread_mutex_unlock(&pod->mu);
}

/* ---- the command -------------------------------------------------------- */

static int fail(sp_err *err)
{
	fprintf(stderr, "sealpod run: %s\n", sp_err_msg(err));
	if (run_report_fd >= 0)
		dprintf(run_report_fd, "sealpod run: %s\n", sp_err_msg(err));
	sp_err_free(err);
	return 1;
}

int cmd_run(int argc, char **argv)
{
	enum { O_IMAGE_DIR = 256, O_REGISTRY, O_TEE, O_ACCEL, O_ATTEST, O_GUEST, O_VCPUS,
	       O_MEMORY, O_GRACE, O_NAME, O_BACKEND, O_DETACH, O_UNSAFE_HOST_DATA, O_REGISTRY_CA,
	       O_NETWORK, O_AUTHFILE };
	static const struct option opts[] = {
		{"image-dir", required_argument, NULL, O_IMAGE_DIR},
		{"registry", required_argument, NULL, O_REGISTRY},
		{"registry-ca", required_argument, NULL, O_REGISTRY_CA},
		{"authfile", required_argument, NULL, O_AUTHFILE},
		{"tee", required_argument, NULL, O_TEE},
		{"accel", required_argument, NULL, O_ACCEL},
		{"attest", no_argument, NULL, O_ATTEST},
		{"guest-dir", required_argument, NULL, O_GUEST},
		{"vcpus", required_argument, NULL, O_VCPUS},
		{"memory", required_argument, NULL, O_MEMORY},
		{"grace", required_argument, NULL, O_GRACE},
		{"name", required_argument, NULL, O_NAME},
		{"backend", required_argument, NULL, O_BACKEND},
		{"detach", no_argument, NULL, O_DETACH},
		{"network", required_argument, NULL, O_NETWORK},
		{"publish", required_argument, NULL, 'p'},
		/* Tests: launch with another HOST_DATA, as a lying host would. */
		{"unsafe-host-data", required_argument, NULL, O_UNSAFE_HOST_DATA},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct run_opts ro = {.tee = "sim", .accel = "auto", .vcpus = 1, .memory_mib = 0,
			      .grace_s = -1, .backend = "vm", .network = "user"};
	_cleanup_free_ const char **publish = sp_xcalloc((size_t)argc + 1, sizeof(char *));
	ro.publish = publish;
	uint8_t unsafe_host_data[SP_SHA256_LEN];
	bool use_unsafe = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hp:", opts, NULL)) != -1) {
		switch (c) {
		case O_IMAGE_DIR: ro.image_dir = optarg; break;
		case O_REGISTRY: ro.registry = optarg; break;
		case O_REGISTRY_CA: ro.registry_ca = optarg; break;
		case O_AUTHFILE: ro.authfile = optarg; break;
		case O_TEE: ro.tee = optarg; break;
		case O_ACCEL: ro.accel = optarg; break;
		case O_ATTEST: ro.attest = true; break;
		case O_GUEST: ro.guest_dir = optarg; break;
		case O_VCPUS: ro.vcpus = (unsigned)strtoul(optarg, NULL, 10); break;
		case O_MEMORY:
			ro.memory_mib = strtoull(optarg, NULL, 10);
			if (ro.memory_mib < 64) {
				fprintf(stderr, "sealpod run: --memory must be at least 64\n");
				return 2;
			}
			break;
		case O_GRACE: ro.grace_s = atoi(optarg); break;
		case O_NAME: ro.name = optarg; break;
		case O_BACKEND: ro.backend = optarg; break;
		case O_UNSAFE_HOST_DATA: {
			sp_err *e = NULL;
			if (sp_hex_decode(unsafe_host_data, sizeof(unsafe_host_data), optarg, &e) < 0) {
				fprintf(stderr, "sealpod run: --unsafe-host-data: %s\n", sp_err_msg(e));
				sp_err_free(e);
				return 2;
			}
			use_unsafe = true;
			break;
		}
		case O_DETACH: ro.detach = true; break;
		case O_NETWORK: ro.network = optarg; break;
		case 'p': publish[ro.n_publish++] = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	ro.file = argv[optind];
	_cleanup_free_ char *default_images = NULL;
	if (!ro.image_dir && !ro.registry)
		ro.image_dir = default_images = run_default_image_dir();
	if (strcmp(ro.tee, "sim") && strcmp(ro.tee, "snp") && strcmp(ro.tee, "none")) {
		fprintf(stderr, "sealpod run: --tee must be sim, snp or none, not `%s`\n", ro.tee);
		return 2;
	}
	if (strcmp(ro.accel, "auto") && strcmp(ro.accel, "kvm") && strcmp(ro.accel, "tcg")) {
		fprintf(stderr, "sealpod run: --accel must be auto, kvm or tcg, not `%s`\n", ro.accel);
		return 2;
	}
	if (ro.image_dir && ro.registry) {
		fprintf(stderr, "sealpod run: give --image-dir or --registry, not both\n");
		return 2;
	}
	if (ro.registry_ca && (!ro.registry || strncmp(ro.registry, "https://", 8) != 0)) {
		fprintf(stderr, "sealpod run: --registry-ca needs --registry https://HOST[:PORT]\n");
		return 2;
	}
	if (strcmp(ro.network, "user") && strcmp(ro.network, "none")) {
		fprintf(stderr, "sealpod run: --network must be user or none, not `%s`\n", ro.network);
		return 2;
	}
	if (ro.vcpus == 0) {
		fprintf(stderr, "sealpod run: --vcpus must be at least 1\n");
		return 2;
	}

	sp_err *err = NULL;
	struct run_pod rp = {0};
	if (run_pod_load(&rp, &ro, &err) < 0)
		return fail(err);
	struct run_net net;
	if (run_net_plan(&net, &ro, rp.containers, &err) < 0) {
		run_net_clear(&net);
		run_pod_clear(&rp);
		return fail(err);
	}

	/* Every run, foreground or not, has its state directory: `sealpod
	 * ps` lists it and `sealpod exec` reaches it. */
	struct run_state st;
	const char *pod_name = ro.name ? ro.name : rp.pod_name;
	if (run_state_claim(&st, pod_name, ro.file, &err) < 0) {
		run_net_clear(&net);
		run_pod_clear(&rp);
		return fail(err);
	}
	if (net.n_published)
		st.ports = run_net_ports_json(&net);
	/* The caller of --detach returns from here only in the supervisor. */
	if (ro.detach && run_detach(&st, &err) < 0) {
		run_state_release(&st);
		run_pod_clear(&rp);
		run_net_clear(&net);
		return fail(err);
	}
	signal(SIGPIPE, SIG_IGN);
	run_state_write(&st, NULL);

	_cleanup_free_ char *tmp = NULL;
	if (sp_mkdtemp(&tmp, "sealpod-run", &err) < 0) {
		run_state_release(&st);
		run_pod_clear(&rp);
		run_net_clear(&net);
		return fail(err);
	}
	/* The images the policy pins, for the UVM's image disk. */
	const json_t *pcs = json_object_get(sp_policy_json(rp.policy), "containers");
	if (!ro.memory_mib)
		ro.memory_mib = run_uvm_memory_mib(pcs);
	_cleanup_free_ const char **images = sp_xcalloc(json_array_size(pcs) + 1, sizeof(char *));
	for (size_t k = 0; k < json_array_size(pcs); k++)
		images[k] = json_string_value(json_object_get(json_array_get(pcs, k), "image"));
	sp_runtime_config *cfg = NULL;
	if (run_config(&cfg, &ro, tmp, images, &err) < 0) {
		run_state_release(&st);
		run_pod_clear(&rp);
		run_net_clear(&net);
		sp_rm_rf(tmp, NULL);
		return fail(err);
	}

	/* Ctrl-C and SIGTERM stop the pod; every thread but this one
	 * ignores them, so they reach wait_all's loop. */
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (ro.detach)
		signal(SIGHUP, SIG_IGN);

	uint8_t hash[SP_SHA256_LEN];
	char hex[2 * SP_SHA256_LEN + 1];
	sp_policy_hash(rp.policy, hash);
	sp_hex_encode(hex, hash, sizeof(hash));
	run_progress("pod %s: policy %s (%s), HOST_DATA %s", rp.pod_name,
		     rp.policy_generated ? "generated from the YAML" : "from the annotation",
		     SP_POLICY_ANNOTATION, hex);
	run_progress("starting the UVM (%s, TEE %s)", cfg->backend, cfg->tee);

	size_t plen;
	const char *pbytes = sp_policy_bytes(rp.policy, &plen);
	_cleanup_free_ char *sbid = run_sandbox_id(ro.name ? ro.name : rp.pod_name);
	/* Recorded before the sandbox exists, so whoever finds this pod's
	 * supervisor dead can remove what it left (run_state_remove_stale). */
	st.sandbox_dir = sp_xasprintf("%s/%s", cfg->state_dir, sbid);
	sp_sandbox_opts so = {.version = 1, .id = sbid, .hostname = rp.pod_name,
			      .pod_name = rp.pod_name, .pod_namespace = rp.pod_namespace,
			      .policy = (const uint8_t *)pbytes, .policy_len = plen,
			      .unsafe_host_data = use_unsafe ? unsafe_host_data : NULL};
	sp_sandbox_net snet = {.mode = net.mode, .ports = net.ports, .n_ports = net.n};
	so.net = &snet;
	struct run_live pod = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
			       .hostname = rp.pod_name, .name = st.name, .st = &st,
			       .quiet = ro.detach, .phase = "starting", .net = &net};
	pod.grace_s = ro.grace_s >= 0 ? (unsigned)ro.grace_s : rp.grace_s;
	/* Containers in policy order: init containers first. */
	const json_t *pc = json_object_get(sp_policy_json(rp.policy), "containers");
	pod.n = json_array_size(pc);
	pod.ctrs = sp_xcalloc(pod.n ? pod.n : 1, sizeof(*pod.ctrs));
	for (size_t k = 0; k < pod.n; k++) {
		const json_t *e = json_array_get(pc, k);
		struct run_ctr *ck = &pod.ctrs[k];
		ck->name = sp_xstrdup(json_string_value(json_object_get(e, "name")));
		ck->init = json_is_true(json_object_get(e, "init"));
		ck->id = sp_xasprintf("%s-%s", sbid, ck->name);
		ck->logfd = run_state_open_log(&st, ck->name);
		size_t j;
		json_t *y;
		json_array_foreach(rp.containers, j, y)
			if (json_is_string(json_object_get(y, "name")) &&
			    !strcmp(json_string_value(json_object_get(y, "name")), ck->name))
				ck->yaml = y;
	}
	run_state_write(&st, &pod);
	int rc = 0;
	bool running = false;
	if (run_ctl_start(&pod, &err) < 0) {
		rc = fail(err);
		goto out;
	}
	uint64_t t0 = sp_now_ns();
	if (sp_sandbox_start(&pod.sb, cfg, &so, &err) < 0) {
		rc = fail(err);
		goto out;
	}
	run_progress("UVM ready in %.1f s", (double)(sp_now_ns() - t0) / 1e9);

	if (ro.attest && run_attest(pod.sb, &ro, cfg, rp.policy, &err) < 0) {
		rc = fail(err);
		goto out;
	}

	size_t i = 0;
	for (; i < pod.n && pod.ctrs[i].init && !run_interrupted; i++) {
		if (create_and_start(&pod, &pod.ctrs[i], &err) < 0) {
			rc = fail(err);
			err = NULL;
			goto stop;
		}
		wait_all(&pod, i, i + 1);
		if (pod.ctrs[i].status != 0) {
			fprintf(stderr, "sealpod run: init container %s exited with status %d\n",
				pod.ctrs[i].name, pod.ctrs[i].status);
			rc = pod.ctrs[i].status;
			goto stop;
		}
	}
	size_t first = i;
	for (; i < pod.n && !run_interrupted; i++) {
		if (create_and_start(&pod, &pod.ctrs[i], &err) < 0) {
			rc = fail(err);
			err = NULL;
			run_interrupted = SIGTERM; /* stop the ones already running */
			break;
		}
	}
	if (rc == 0 && !run_interrupted) {
		pthread_mutex_lock(&pod.mu);
		pod.phase = "running";
		run_state_write(&st, &pod);
		pthread_mutex_unlock(&pod.mu);
		if (ro.detach)
			run_progress("pod %s running; `sealpod logs %s`, `sealpod stop %s`", st.name,
				     st.name, st.name);
		run_detach_ready();
		running = true;
	}
	wait_all(&pod, first, pod.n);
	if (rc == 0) {
		for (size_t k = first; k < pod.n; k++) {
			if (pod.ctrs[k].started && pod.ctrs[k].status != 0) {
				fprintf(stderr, "sealpod run: container %s exited with status %d\n",
					pod.ctrs[k].name, pod.ctrs[k].status);
				if (rc == 0)
					rc = pod.ctrs[k].status;
			}
		}
		if (run_interrupted && rc == 0)
			rc = 128 + run_interrupted;
	}
stop:
	pthread_mutex_lock(&pod.mu);
	pod.closed = true; /* no new execs */
	pthread_mutex_unlock(&pod.mu);
	for (size_t k = 0; k < pod.n; k++) {
		join_container(&pod.ctrs[k]);
		if (pod.ctrs[k].created)
			sp_sandbox_remove_container(pod.sb, pod.ctrs[k].id, 0, NULL);
	}
	close_execs(&pod);
	if (!sp_sandbox_alive(pod.sb) && rc == 0) {
		fprintf(stderr, "sealpod run: the UVM died\n");
		rc = 1;
	}
out:
	pthread_mutex_lock(&pod.mu);
	pod.closed = true;
	pthread_mutex_unlock(&pod.mu);
	close_execs(&pod);
	if (pod.sb) {
		sp_err *e2 = NULL;
		if (sp_sandbox_stop(pod.sb, &e2) < 0) {
			sp_log_warn("%s", sp_err_msg(e2));
			sp_err_free(e2);
		}
		sp_sandbox_free(pod.sb);
		pod.sb = NULL;
	}
	/* A detached pod that ended by itself stays listed, with its exit
	 * codes and logs, until `sealpod stop` (as podman keeps an exited
	 * pod until `pod rm`); its UVM is gone already. */
	if (ro.detach && running && !run_interrupted) {
		pthread_mutex_lock(&pod.mu);
		pod.phase = "exited";
		run_state_write(&st, &pod);
		while (!run_interrupted)
			timed_wait(&pod, 200000000);
		pthread_mutex_unlock(&pod.mu);
	}
	run_ctl_stop();
	for (size_t k = 0; k < pod.n; k++) {
		free(pod.ctrs[k].name);
		free(pod.ctrs[k].id);
		json_decref(pod.ctrs[k].process);
		if (pod.ctrs[k].logfd >= 0)
			close(pod.ctrs[k].logfd);
	}
	free(pod.ctrs);
	run_state_release(&st);
	sp_runtime_config_free(cfg);
	run_pod_clear(&rp);
	run_net_clear(&net);
	sp_rm_rf(tmp, NULL);
	return rc > 255 ? 255 : rc;
}
