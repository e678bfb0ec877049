/* SPDX-License-Identifier: Apache-2.0 */
/* PID-1 duties of sealpod-agent (see pid1.h). */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include "pid1.h"
#include "sealpod/file.h"
#include "sealpod/guest.h"
#include "sealpod/log.h"

#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

static int do_mount(const char *src, const char *dst, const char *type,
		    unsigned long flags, const char *data, bool required, sp_err **err)
{
	if (mkdir(dst, 0755) < 0 && errno != EEXIST) {
		if (!required)
			return 0;
		return sp_error_sys(err, errno, "mkdir %s", dst);
	}
	if (mount(src, dst, type, flags, data) == 0 || errno == EBUSY)
		return 0;
	if (!required) {
		sp_log_warn("mount %s on %s: %s", type, dst, strerror(errno));
		return 0;
	}
	return sp_error_sys(err, errno, "mount %s on %s", type, dst);
}

/* The kernel opens /dev/console for PID 1 only if the initramfs has it;
 * make sure fds 0-2 exist either way, or the first log line is lost. */
static void ensure_console(void)
{
	if (fcntl(2, F_GETFD) >= 0)
		return;
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) < 0)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

static bool have_fs(const char *name)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	if (sp_read_file(&data, &len, "/proc/filesystems", 1 << 16, NULL) < 0)
		return false;
	_cleanup_free_ char *want = sp_xasprintf("\t%s\n", name);
	return strstr((char *)data, want) != NULL;
}

int sp_pid1_mount_all(sp_err **err)
{
	const unsigned long nse = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (do_mount("proc", "/proc", "proc", nse, NULL, true, err) < 0 ||
	    do_mount("sysfs", "/sys", "sysfs", nse, NULL, true, err) < 0 ||
	    do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755",
		     true, err) < 0)
		return SP_ERR_SYSTEM;
	ensure_console();
	do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		 "newinstance,ptmxmode=0666,mode=0620", false, NULL);
	if (symlink("pts/ptmx", "/dev/ptmx") < 0 && errno != EEXIST)
		sp_log_debug("/dev/ptmx: %s", strerror(errno));
	do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false, NULL);
	do_mount("run", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", false, NULL);
	do_mount("tmp", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false, NULL);
	do_mount("cgroup2", "/sys/fs/cgroup", "cgroup2", nse, "nsdelegate", false, NULL);
	const char *links[][2] = {{"/proc/self/fd", "/dev/fd"},
				  {"/proc/self/fd/0", "/dev/stdin"},
				  {"/proc/self/fd/1", "/dev/stdout"},
				  {"/proc/self/fd/2", "/dev/stderr"}};
	for (size_t i = 0; i < SP_ARRAY_LEN(links); i++)
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
			sp_log_debug("%s: %s", links[i][1], strerror(errno));
	return 0;
}

int sp_pid1_load_modules(const char *list_path, sp_err **err)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	if (sp_read_file(&data, &len, list_path, 1 << 20, err) < 0)
		return SP_ERR_SYSTEM;
	int loaded = 0;
	char *save = NULL;
	for (char *p = strtok_r((char *)data, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
		if (*p != '/')
			continue;
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			sp_log_warn("module %s: %s", p, strerror(errno));
			continue;
		}
		size_t n = strlen(p);
		int flags = 0;
		if ((n > 3 && !strcmp(p + n - 3, ".xz")) || (n > 4 && !strcmp(p + n - 4, ".zst")) ||
		    (n > 3 && !strcmp(p + n - 3, ".gz")))
			flags |= MODULE_INIT_COMPRESSED_FILE;
		if (syscall(SYS_finit_module, fd, "", flags) == 0)
			loaded++;
		else if (errno != EEXIST)
			sp_log_warn("loading module %s: %s", p, strerror(errno));
		close(fd);
		/* The initramfs lives in RAM: a loaded module's file is dead
		 * weight (about 2 MiB for the default set). */
		if (getpid() == 1)
			unlink(p);
	}
	return loaded;
}

static char *read_trim(const char *path)
{
	uint8_t *data = NULL;
	size_t len;
	if (sp_read_file(&data, &len, path, 4096, NULL) < 0)
		return NULL;
	while (len && (data[len - 1] == '\n' || data[len - 1] == ' '))
		data[--len] = 0;
	return (char *)data;
}

/* Port names come from the host: accept only plain names. */
static bool safe_name(const char *s)
{
	if (!*s || strlen(s) > 64 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* Calls fn for each named port until it returns true. */
static bool each_port(bool (*fn)(void *u, const char *dev, const char *name), void *u)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return false;
	struct dirent *de;
	bool stop = false;
	while (!stop && (de = readdir(d))) {
		if (de->d_name[0] == '.' || !safe_name(de->d_name))
			continue;
		_cleanup_free_ char *np =
			sp_xasprintf("/sys/class/virtio-ports/%s/name", de->d_name);
		_cleanup_free_ char *name = read_trim(np);
		if (name && safe_name(name))
			stop = fn(u, de->d_name, name);
	}
	closedir(d);
	return stop;
}

/* devtmpfs makes /dev/vportNpM; if it does not exist yet, make it from
 * the port's dev attribute. */
static void ensure_node(const char *dev)
{
	_cleanup_free_ char *node = sp_xasprintf("/dev/%s", dev);
	if (access(node, F_OK) == 0)
		return;
	_cleanup_free_ char *dp = sp_xasprintf("/sys/class/virtio-ports/%s/dev", dev);
	_cleanup_free_ char *mm = read_trim(dp);
	unsigned maj, min;
	if (mm && sscanf(mm, "%u:%u", &maj, &min) == 2)
		mknod(node, S_IFCHR | 0600, makedev(maj, min));
}

static bool link_one(void *u, const char *dev, const char *name)
{
	int *count = u;
	ensure_node(dev);
	_cleanup_free_ char *lnk = sp_xasprintf("/dev/virtio-ports/%s", name);
	_cleanup_free_ char *target = sp_xasprintf("../%s", dev);
	unlink(lnk);
	if (symlink(target, lnk) == 0)
		(*count)++;
	return false;
}

int sp_pid1_link_virtio_ports(void)
{
	int count = 0;
	mkdir("/dev/virtio-ports", 0755);
	each_port(link_one, &count);
	return count;
}

struct find_port {
	const char *name;
	char *dev;
};

static bool match_port(void *u, const char *dev, const char *name)
{
	struct find_port *f = u;
	if (strcmp(name, f->name))
		return false;
	ensure_node(dev);
	f->dev = sp_xasprintf("/dev/%s", dev);
	return true;
}

int sp_pid1_wait_port(const char *name, uint64_t timeout_ns, char **dev, sp_err **err)
{
	uint64_t deadline = sp_now_ns() + timeout_ns;
	struct find_port f = {.name = name};
	for (;;) {
		if (each_port(match_port, &f)) {
			*dev = f.dev;
			return 0;
		}
		if (sp_now_ns() >= deadline)
			return sp_error(err, SP_ERR_NOT_FOUND,
					"virtio-serial port `%s` did not appear within "
					"%llu ms; the host must add it", name,
					(unsigned long long)(timeout_ns / 1000000));
		poll(NULL, 0, 5);
	}
}

uint64_t sp_pid1_mem_used_kb(uint64_t *total_kb)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	if (total_kb)
		*total_kb = 0;
	if (sp_read_file(&data, &len, "/proc/meminfo", 1 << 16, NULL) < 0)
		return 0;
	unsigned long long total = 0, avail = 0;
	char *p = strstr((char *)data, "MemTotal:");
	char *q = strstr((char *)data, "MemAvailable:");
	if (!p || !q || sscanf(p, "MemTotal: %llu", &total) != 1 ||
	    sscanf(q, "MemAvailable: %llu", &avail) != 1 || avail > total)
		return 0;
	if (total_kb)
		*total_kb = total;
	return total - avail;
}

uint64_t sp_pid1_uptime_ms(void)
{
	_cleanup_free_ char *s = read_trim("/proc/uptime");
	double up = 0;
	if (!s || sscanf(s, "%lf", &up) != 1)
		return 0;
	return (uint64_t)(up * 1000.0);
}

int sp_pid1_setup(sp_pid1_stats *stats, sp_err **err)
{
	uint64_t t0 = sp_now_ns();
	memset(stats, 0, sizeof(*stats));
	umask(022);
	if (sp_pid1_mount_all(err) < 0)
		return sp_error_wrap(err, "PID 1 setup");
	stats->kernel_ms = sp_pid1_uptime_ms();
	setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
	_cleanup_err_ sp_err *e = NULL;
	int n = sp_pid1_load_modules(SP_GUEST_MODULES_LIST, &e);
	if (n < 0)
		sp_log_warn("kernel modules: %s", sp_err_msg(e));
	else
		stats->modules_loaded = (unsigned)n;
	if (have_fs("configfs"))
		do_mount("configfs", "/sys/kernel/config", "configfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			 NULL, false, NULL);
	sp_pid1_link_virtio_ports();
	stats->setup_ms = (sp_now_ns() - t0) / 1000000;
	return 0;
}

void sp_pid1_poweroff(void)
{
	sync();
	reboot(RB_POWER_OFF);
	_exit(1);
}

/* ------------------------------------------------------------------ */
/* The reaper. */

#define UNCLAIMED_MAX 256

typedef struct watch {
	pid_t pid;
	sp_reaper_fn fn;
	void *user;
	/* sp_reaper_wait(): the waiter's slot. */
	bool *done;
	int *status;
} watch;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool running, stop;
	watch *w;
	size_t n_w;
	struct {
		pid_t pid;
		int status;
	} unclaimed[UNCLAIMED_MAX];
	size_t next_unclaimed;
} R = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void deliver(pid_t pid, int status)
{
	pthread_mutex_lock(&R.lock);
	for (size_t i = 0; i < R.n_w; i++) {
		if (R.w[i].pid != pid)
			continue;
		watch w = R.w[i];
		R.w[i] = R.w[--R.n_w];
		if (w.done) {
			*w.status = status;
			*w.done = true;
			pthread_cond_broadcast(&R.cond);
		}
		pthread_mutex_unlock(&R.lock);
		if (w.fn)
			w.fn(w.user, pid, status);
		return;
	}
	/* Nobody asked (yet): keep it; the oldest is dropped when full. */
	R.unclaimed[R.next_unclaimed].pid = pid;
	R.unclaimed[R.next_unclaimed].status = status;
	R.next_unclaimed = (R.next_unclaimed + 1) % UNCLAIMED_MAX;
	pthread_mutex_unlock(&R.lock);
}

static void *reaper_main(void *arg)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (;;) {
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			deliver(pid, status);
		pthread_mutex_lock(&R.lock);
		bool stop = R.stop;
		pthread_mutex_unlock(&R.lock);
		if (stop)
			return NULL;
		int sig;
		sigwait(&set, &sig);
	}
	return arg;
}

int sp_reaper_start(sp_err **err)
{
	if (R.running)
		return 0;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	int r = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (r)
		return sp_error_sys(err, r, "block SIGCHLD");
	R.stop = false;
	r = pthread_create(&R.thread, NULL, reaper_main, NULL);
	if (r)
		return sp_error_sys(err, r, "start the reaper thread");
	R.running = true;
	return 0;
}

void sp_reaper_stop(void)
{
	if (!R.running)
		return;
	pthread_mutex_lock(&R.lock);
	R.stop = true;
	pthread_mutex_unlock(&R.lock);
	pthread_kill(R.thread, SIGCHLD);
	pthread_join(R.thread, NULL);
	R.running = false;
	pthread_mutex_lock(&R.lock);
	free(R.w);
	R.w = NULL;
	R.n_w = 0;
	memset(R.unclaimed, 0, sizeof(R.unclaimed));
	pthread_mutex_unlock(&R.lock);
}

void sp_reaper_child_reset(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Under the lock: takes an unclaimed status for pid. */
static bool take_unclaimed(pid_t pid, int *status)
{
	for (size_t i = 0; i < UNCLAIMED_MAX; i++)
		if (R.unclaimed[i].pid == pid && pid > 0) {
			*status = R.unclaimed[i].status;
			R.unclaimed[i].pid = 0;
			return true;
		}
	return false;
}

static void add_watch(watch w)
{
	R.w = sp_xrealloc(R.w, (R.n_w + 1) * sizeof(watch));
	R.w[R.n_w++] = w;
}

void sp_reaper_watch(pid_t pid, sp_reaper_fn fn, void *user)
{
	int status;
	pthread_mutex_lock(&R.lock);
	if (take_unclaimed(pid, &status)) {
		pthread_mutex_unlock(&R.lock);
		fn(user, pid, status);
		return;
	}
	add_watch((watch){.pid = pid, .fn = fn, .user = user});
	pthread_mutex_unlock(&R.lock);
}

void sp_reaper_unwatch(pid_t pid)
{
	pthread_mutex_lock(&R.lock);
	for (size_t i = 0; i < R.n_w; i++)
		if (R.w[i].pid == pid && !R.w[i].done) {
			R.w[i] = R.w[--R.n_w];
			break;
		}
	pthread_mutex_unlock(&R.lock);
}

int sp_reaper_wait(pid_t pid, int *status, uint64_t timeout_ns, sp_err **err)
{
	bool done = false;
	int st = 0;
	pthread_mutex_lock(&R.lock);
	if (take_unclaimed(pid, status)) {
		pthread_mutex_unlock(&R.lock);
		return 0;
	}
	add_watch((watch){.pid = pid, .done = &done, .status = &st});
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t end = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + timeout_ns;
	ts.tv_sec = (time_t)(end / 1000000000ull);
	ts.tv_nsec = (long)(end % 1000000000ull);
	while (!done) {
		int r = timeout_ns ? pthread_cond_timedwait(&R.cond, &R.lock, &ts)
				   : pthread_cond_wait(&R.cond, &R.lock);
		if (r == ETIMEDOUT && !done) {
			for (size_t i = 0; i < R.n_w; i++)
				if (R.w[i].done == &done) {
					R.w[i] = R.w[--R.n_w];
					break;
				}
			pthread_mutex_unlock(&R.lock);
			return sp_error(err, SP_ERR_TIMEOUT,
					"process %d did not exit within %llu ms", (int)pid,
					(unsigned long long)(timeout_ns / 1000000));
		}
	}
	pthread_mutex_unlock(&R.lock);
	*status = st;
	return 0;
}
