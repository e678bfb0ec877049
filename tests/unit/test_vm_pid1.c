/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's reaper: exit statuses reach whoever registered for them,
 * also when the child exited before it was registered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "../../src/agent/pid1.h"
#include "sealpod/file.h"

static pid_t spawn_exit(int code, int delay_ms)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sp_reaper_child_reset();
		if (delay_ms)
			poll(NULL, 0, delay_ms);
		_exit(code);
	}
	return pid;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int seen_status = -1;
static pid_t seen_pid;

static void on_exit_cb(void *user, pid_t pid, int status)
{
	pthread_mutex_lock(&mu);
	seen_pid = pid;
	seen_status = status;
	*(int *)user += 1;
	pthread_mutex_unlock(&mu);
}

static int setup(void **state)
{
	return sp_reaper_start(NULL);
}

static int teardown(void **state)
{
	sp_reaper_stop();
	return 0;
}

static void test_watch_callback(void **state)
{
	int calls = 0;
	pid_t pid = spawn_exit(7, 50);
	sp_reaper_watch(pid, on_exit_cb, &calls);
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&mu);
		int c = calls;
		pthread_mutex_unlock(&mu);
		if (c)
			break;
		poll(NULL, 0, 10);
	}
	assert_int_equal(calls, 1);
	assert_int_equal(seen_pid, pid);
	assert_true(WIFEXITED(seen_status));
	assert_int_equal(WEXITSTATUS(seen_status), 7);
}

static void test_exit_before_watch(void **state)
{
	pid_t pid = spawn_exit(3, 0);
	poll(NULL, 0, 200); /* reaped as unclaimed meanwhile */
	int calls = 0;
	sp_reaper_watch(pid, on_exit_cb, &calls);
	assert_int_equal(calls, 1); /* called at once, in this thread */
	assert_int_equal(WEXITSTATUS(seen_status), 3);
}

static void test_wait_and_timeout(void **state)
{
	int status = 0;
	pid_t pid = spawn_exit(9, 30);
	assert_int_equal(sp_reaper_wait(pid, &status, 5 * 1000000000ull, NULL), 0);
	assert_int_equal(WEXITSTATUS(status), 9);
	/* A process that does not exit in time; then killed, its status is
	 * still delivered to a later waiter. */
	pid = spawn_exit(0, 100000);
	sp_err *err = NULL;
	assert_int_equal(sp_reaper_wait(pid, &status, 50 * 1000000ull, &err), SP_ERR_TIMEOUT);
	assert_non_null(strstr(sp_err_msg(err), "did not exit"));
	sp_err_clear(&err);
	kill(pid, SIGKILL);
	assert_int_equal(sp_reaper_wait(pid, &status, 5 * 1000000000ull, NULL), 0);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
}

static void test_many_children(void **state)
{
	pid_t pids[50];
	for (int i = 0; i < 50; i++)
		pids[i] = spawn_exit(i, i % 5);
	for (int i = 49; i >= 0; i--) {
		int status = -1;
		assert_int_equal(sp_reaper_wait(pids[i], &status, 10 * 1000000000ull, NULL), 0);
		assert_int_equal(WEXITSTATUS(status), i);
	}
}

static void test_mem_used(void **state)
{
	uint64_t total = 0;
	uint64_t used = sp_pid1_mem_used_kb(&total);
	assert_true(total > 0);
	assert_true(used > 0 && used <= total);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_watch_callback),
		cmocka_unit_test(test_exit_before_watch),
		cmocka_unit_test(test_wait_and_timeout),
		cmocka_unit_test(test_many_children),
		cmocka_unit_test(test_mem_used),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
