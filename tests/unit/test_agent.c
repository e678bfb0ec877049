/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's dispatcher, policy gate, output buffers, CopyFile and the
 * attestation endpoint, driven in-process. The TEE is a stand-in that
 * builds a report with the REPORT_DATA asked for and a chosen HOST_DATA:
 * these tests are about the agent's decisions; the real sim TEE path is
 * covered by tests/integration/test_agent.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/agent_internal.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"
#include "sealpod/policy.h"

static uint8_t host_data[32];
static int reports_made;

static int fake_report(void *ctx, const uint8_t rd[64], uint8_t **report,
		       size_t *report_len, uint8_t **certs, size_t *certs_len,
		       sp_err **err)
{
	uint8_t *r = sp_xzalloc(SP_SNP_REPORT_LEN);
	sp_put_le32(r, 2);
	memcpy(r + 0x50, rd, 64);
	memcpy(r + 0xC0, host_data, 32);
	*report = r;
	*report_len = SP_SNP_REPORT_LEN;
	*certs = NULL;
	*certs_len = 0;
	reports_made++;
	return 0;
}

static const sp_agent_tee fake_tee = {"sim", fake_report, NULL};

static int resolve(void *ctx, const char *ref, sp_policy_image *out, sp_err **err)
{
	char *digest = sp_xasprintf("docker.io/library/busybox:latest@sha256:%064d", 0);
	out->reference = digest;
	out->cmd = sp_xcalloc(2, sizeof(char *));
	out->cmd[0] = sp_xstrdup("sh");
	return 0;
}

/* A real policy (canonical bytes), generated for a one-container pod. */
static char *make_policy(void)
{
	const char *pod = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\","
			  "\"namespace\":\"default\"},\"spec\":{\"containers\":[{\"name\":\"app\","
			  "\"image\":\"busybox\"}]}}";
	json_t *j = json_loads(pod, 0, NULL);
	assert_non_null(j);
	sp_policy_gen_opts o = {.version = 1, .resolve = resolve};
	json_t *out = NULL;
	sp_err *err = NULL;
	if (sp_policy_generate(j, NULL, &o, &out, &err) < 0)
		fail_msg("policy generate: %s", sp_err_msg(err));
	char *s = sp_json_dump_canonical(out);
	json_decref(out);
	json_decref(j);
	return s;
}

typedef struct fixture {
	sp_agent *a;
	char *dir;
} fixture;

static int setup(void **state)
{
	fixture *f = sp_xzalloc(sizeof(*f));
	sp_err *err = NULL;
	assert_int_equal(sp_mkdtemp(&f->dir, "sp-agent-unit", &err), 0);
	sp_agent_opts o = {.version = 1, .native = true, .state_dir = f->dir,
			   .rootfs_dir = "/", .tee = &fake_tee};
	assert_int_equal(sp_agent_new(&f->a, &o, &err), 0);
	memset(host_data, 0, sizeof(host_data));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	sp_agent_free(f->a);
	sp_rm_rf(f->dir, NULL);
	free(f->dir);
	free(f);
	return 0;
}

/* One call through the dispatcher; returns the rpc code. */
static int call(sp_agent *a, const char *method, const ProtobufCMessage *req,
		uint8_t **out, size_t *out_len, char **msg)
{
	size_t n = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = sp_xmalloc(n + 1);
	protobuf_c_message_pack(req, buf);
	const char *svc = strcmp(method, "Check") ? SP_AGENT_SERVICE
						  : SP_AGENT_HEALTH_SERVICE;
	uint8_t *o = NULL;
	size_t ol = 0;
	char *m = NULL;
	int rc = sp_agent_dispatch(a, svc, method, buf, n,
				   sp_now_ns() + 2000000000ull, &o, &ol, &m);
	free(buf);
	if (out) {
		*out = o;
		*out_len = ol;
	} else {
		free(o);
	}
	if (msg)
		*msg = m;
	else
		free(m);
	return rc;
}

static void test_before_policy_only_three_requests(void **state)
{
	fixture *f = *state;
	char *msg = NULL;
	Sealpod__Agent__V1__CheckRequest chk = SEALPOD__AGENT__V1__CHECK_REQUEST__INIT;
	assert_int_equal(call(f->a, "Check", &chk.base, NULL, NULL, NULL), SP_RPC_OK);

	uint8_t *out;
	size_t ol;
	Sealpod__Agent__V1__GuestDetailsRequest gd =
		SEALPOD__AGENT__V1__GUEST_DETAILS_REQUEST__INIT;
	assert_int_equal(call(f->a, "GetGuestDetails", &gd.base, &out, &ol, NULL), SP_RPC_OK);
	Sealpod__Agent__V1__GuestDetailsResponse *g =
		sealpod__agent__v1__guest_details_response__unpack(NULL, ol, out);
	assert_non_null(g);
	assert_string_equal(g->tee, "sim");
	assert_string_equal(g->policy_hash, "");
	sealpod__agent__v1__guest_details_response__free_unpacked(g, NULL);
	free(out);

	ACreateContainer cc = SEALPOD__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	cc.container_id = (char *)"c1";
	assert_int_equal(call(f->a, "CreateContainer", &cc.base, NULL, NULL, &msg),
			 SP_RPC_PERMISSION_DENIED);
	assert_non_null(strstr(msg, "SetPolicy"));
	free(msg);
	/* Nothing happened: no container directory. */
	_cleanup_free_ char *cdir = sp_xasprintf("%s/containers/c1", f->dir);
	struct stat st;
	assert_int_not_equal(stat(cdir, &st), 0);

	/* A denied read is an error, never empty data. */
	AReadStream rs = SEALPOD__AGENT__V1__READ_STREAM_REQUEST__INIT;
	rs.container_id = (char *)"c1";
	out = NULL;
	assert_int_equal(call(f->a, "ReadStdout", &rs.base, &out, &ol, NULL),
			 SP_RPC_PERMISSION_DENIED);
	assert_null(out);
	AGetReport gr = SEALPOD__AGENT__V1__GET_REPORT_REQUEST__INIT;
	assert_int_equal(call(f->a, "GetReport", &gr.base, NULL, NULL, NULL),
			 SP_RPC_PERMISSION_DENIED);
	ACopyFile cf = SEALPOD__AGENT__V1__COPY_FILE_REQUEST__INIT;
	assert_int_equal(call(f->a, "CopyFile", &cf.base, NULL, NULL, NULL),
			 SP_RPC_PERMISSION_DENIED);
}

static void test_hostile_requests(void **state)
{
	fixture *f = *state;
	uint8_t *out = NULL;
	size_t ol = 0;
	char *msg = NULL;
	assert_int_equal(sp_agent_dispatch(f->a, SP_AGENT_SERVICE, "Frobnicate",
					   NULL, 0, 0, &out, &ol, &msg),
			 SP_RPC_UNIMPLEMENTED);
	assert_non_null(strstr(msg, "Frobnicate"));
	free(msg);
	assert_int_equal(sp_agent_dispatch(f->a, NULL, NULL, NULL, 0, 0, &out, &ol, &msg),
			 SP_RPC_UNIMPLEMENTED);
	free(msg);
	/* A truncated varint is not a message. */
	const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff};
	assert_int_equal(sp_agent_dispatch(f->a, SP_AGENT_SERVICE, "SetPolicy", junk,
					   sizeof(junk), 0, &out, &ol, &msg),
			 SP_RPC_INVALID_ARGUMENT);
	assert_non_null(strstr(msg, "SetPolicyRequest"));
	free(msg);
}

static void test_set_policy_wrong_hash_refused(void **state)
{
	fixture *f = *state;
	_cleanup_free_ char *policy = make_policy();
	memset(host_data, 0xab, sizeof(host_data));
	ASetPolicy sp = SEALPOD__AGENT__V1__SET_POLICY_REQUEST__INIT;
	sp.policy = (char *)policy;
	char *msg = NULL;
	int before = reports_made;
	assert_int_equal(call(f->a, "SetPolicy", &sp.base, NULL, NULL, &msg),
			 SP_RPC_PERMISSION_DENIED);
	assert_int_equal(reports_made, before + 1);
	uint8_t h[32];
	char hex[65];
	sp_sha256(h, policy, strlen(policy));
	sp_hex_encode(hex, h, 32);
	assert_non_null(strstr(msg, hex));
	assert_non_null(strstr(msg, "HOST_DATA"));
	free(msg);
	/* Still no policy: the gate stays closed. */
	AStartContainer sc = SEALPOD__AGENT__V1__START_CONTAINER_REQUEST__INIT;
	sc.container_id = (char *)"x";
	assert_int_equal(call(f->a, "StartContainer", &sc.base, NULL, NULL, NULL),
			 SP_RPC_PERMISSION_DENIED);
	/* The right hash: accepted, once. */
	sp.policy = policy;
	sp_sha256(host_data, policy, strlen(policy));
	assert_int_equal(call(f->a, "SetPolicy", &sp.base, NULL, NULL, NULL), SP_RPC_OK);
	assert_int_equal(call(f->a, "SetPolicy", &sp.base, NULL, NULL, &msg),
			 SP_RPC_PERMISSION_DENIED);
	free(msg);
	uint8_t *out;
	size_t ol;
	Sealpod__Agent__V1__GuestDetailsRequest gd =
		SEALPOD__AGENT__V1__GUEST_DETAILS_REQUEST__INIT;
	assert_int_equal(call(f->a, "GetGuestDetails", &gd.base, &out, &ol, NULL), SP_RPC_OK);
	Sealpod__Agent__V1__GuestDetailsResponse *g =
		sealpod__agent__v1__guest_details_response__unpack(NULL, ol, out);
	assert_string_equal(g->policy_hash, hex);
	sealpod__agent__v1__guest_details_response__free_unpacked(g, NULL);
	free(out);
}

static void test_set_policy_without_tee(void **state)
{
	sp_err *err = NULL;
	char *dir = NULL;
	assert_int_equal(sp_mkdtemp(&dir, "sp-agent-unit", &err), 0);
	sp_agent_opts o = {.version = 1, .native = true, .state_dir = dir};
	sp_agent *a = NULL;
	assert_int_equal(sp_agent_new(&a, &o, &err), 0);
	ASetPolicy sp = SEALPOD__AGENT__V1__SET_POLICY_REQUEST__INIT;
	_cleanup_free_ char *policy = make_policy();
	sp.policy = policy;
	char *msg = NULL;
	assert_int_equal(call(a, "SetPolicy", &sp.base, NULL, NULL, &msg),
			 SP_RPC_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "no TEE"));
	free(msg);
	sp_agent_free(a);
	sp_rm_rf(dir, NULL);
	free(dir);
}

static void test_stream_ring_wraps_and_backpressures(void **state)
{
	stream s;
	stream_init(&s, NULL, 1, 8, -1);
	s.buf = sp_xmalloc(8);
	/* Fill 6, take 4, fill 6 (wrapping): content stays in order. */
	memcpy(s.buf, "abcdef", 6);
	s.len = 6;
	uint8_t out[16];
	assert_int_equal(stream_take(&s, out, 4), 4);
	assert_memory_equal(out, "abcd", 4);
	size_t tail = (s.head + s.len) % s.cap;
	const char *more = "ghijkl";
	for (int i = 0; i < 6; i++)
		s.buf[(tail + (size_t)i) % s.cap] = (uint8_t)more[i];
	s.len += 6;
	assert_int_equal(s.len, s.cap);
	assert_int_equal(stream_take(&s, out, sizeof(out)), 8);
	assert_memory_equal(out, "efghijkl", 8);
	assert_int_equal(s.len, 0);
	free(s.buf);
}

static void test_copy_file(void **state)
{
	fixture *f = *state;
	reply r = {0};
	ACopyFile q = SEALPOD__AGENT__V1__COPY_FILE_REQUEST__INIT;
	const char *bad[] = {
		"/etc/passwd",
		"/run/sealpod/sandbox/../../etc/x",
		"/run/sealpod/sandbox/configmap/../secret/x",
		"/run/sealpod/sandbox/other/v/x",
		"/run/sealpod/sandbox/configmap//x",
		"/run/sealpod/sandbox/configmap/v",
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
		q.path = (char *)bad[i];
		assert_int_equal(h_copy_file(f->a, &q, &r), SP_RPC_INVALID_ARGUMENT);
		free(r.msg);
		r.msg = NULL;
	}
	/* A file in two chunks appears only when complete. */
	q.path = (char *)"/run/sealpod/sandbox/configmap/cfg/app.conf";
	q.file_size = 10;
	q.file_mode = 0100644;
	q.data.data = (uint8_t *)"hello";
	q.data.len = 5;
	assert_int_equal(h_copy_file(f->a, &q, &r), SP_RPC_OK);
	free(r.out);
	r.out = NULL;
	_cleanup_free_ char *p = sp_xasprintf("%s/sandbox/configmap/cfg/app.conf", f->dir);
	struct stat st;
	assert_int_not_equal(stat(p, &st), 0);
	/* Out of order chunk refused. */
	q.offset = 7;
	q.data.len = 3;
	q.data.data = (uint8_t *)"xyz";
	assert_int_equal(h_copy_file(f->a, &q, &r), SP_RPC_FAILED_PRECONDITION);
	free(r.msg);
	r.msg = NULL;
	q.offset = 5;
	q.data.data = (uint8_t *)"world";
	q.data.len = 5;
	assert_int_equal(h_copy_file(f->a, &q, &r), SP_RPC_OK);
	free(r.out);
	r.out = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	assert_int_equal(sp_read_file(&data, &len, p, 100, NULL), 0);
	assert_int_equal(len, 10);
	assert_memory_equal(data, "helloworld", 10);
	free(data);
	/* A symlink planted as a directory is not followed. */
	_cleanup_free_ char *ln = sp_xasprintf("%s/sandbox/secret", f->dir);
	assert_int_equal(symlink("/tmp", ln), 0);
	q.path = (char *)"/run/sealpod/sandbox/secret/s/key";
	q.offset = 0;
	assert_int_equal(h_copy_file(f->a, &q, &r), SP_RPC_INVALID_ARGUMENT);
	free(r.msg);
	r.msg = NULL;
	/* Absolute symlink targets are refused. */
	q.path = (char *)"/run/sealpod/sandbox/configmap/cfg/link";
	q.file_mode = 0120777;
	q.data.data = (uint8_t *)"/etc/shadow";
	q.data.len = q.file_size = 11;
	assert_int_equal(h_copy_file(f->a, &q, &r), SP_RPC_INVALID_ARGUMENT);
	free(r.msg);
	r.msg = NULL;
	/* So is a ".." component, wherever it is. */
	const char *up[] = {"..", "../x", "a/../../x", "a/.."};
	for (size_t i = 0; i < SP_ARRAY_LEN(up); i++) {
		q.data.data = (uint8_t *)up[i];
		q.data.len = q.file_size = (int64_t)strlen(up[i]);
		assert_int_equal(h_copy_file(f->a, &q, &r), SP_RPC_INVALID_ARGUMENT);
		free(r.msg);
		r.msg = NULL;
	}
	/* Kubelet's atomic-writer layout: key -> ..data/key, in a projected
	 * volume too. */
	q.path = (char *)"/run/sealpod/sandbox/projected/p/key";
	q.data.data = (uint8_t *)"..data/key";
	q.data.len = q.file_size = 10;
	assert_int_equal(h_copy_file(f->a, &q, &r), SP_RPC_OK);
	free(r.out);
	r.out = NULL;
	_cleanup_free_ char *lp = sp_xasprintf("%s/sandbox/projected/p/key", f->dir);
	char target[64] = {0};
	assert_int_equal(readlink(lp, target, sizeof(target) - 1), 10);
	assert_string_equal(target, "..data/key");
}

static char *http(sp_agent *a, const char *req)
{
	sp_buf b = SP_BUF_INIT;
	attest_handle(a, (const uint8_t *)req, strlen(req), &b);
	sp_buf_terminate(&b);
	return (char *)b.data;
}

static void test_attest_endpoint(void **state)
{
	fixture *f = *state;
	/* With the agent lock held, as CreateSandbox and DestroySandbox hold
	 * it while they start and stop the server: the handler must not need
	 * it (this would deadlock). */
	pthread_mutex_lock(&f->a->lock);
	_cleanup_free_ char *r = http(f->a, "GET /aa/evidence?runtime_data=hello%20world HTTP/1.1\r\nHost: x\r\n\r\n");
	pthread_mutex_unlock(&f->a->lock);
	assert_true(!strncmp(r, "HTTP/1.1 200 ", 13));
	uint8_t want[64];
	attest_bind_runtime_data(want, "hello world", 11);
	char hex[129];
	sp_hex_encode(hex, want, 64);
	assert_non_null(strstr(r, hex));
	/* The report itself carries the binding at REPORT_DATA. */
	const char *body = strstr(r, "\r\n\r\n") + 4;
	json_t *j = json_loads(body, 0, NULL);
	assert_non_null(j);
	const char *rb = json_string_value(json_object_get(j, "attestation_report"));
	uint8_t *rep = NULL;
	size_t rl = 0;
	assert_int_equal(sp_base64_decode(&rep, &rl, rb, strlen(rb), SP_B64_STD, NULL), 0);
	assert_int_equal(rl, SP_SNP_REPORT_LEN);
	assert_memory_equal(rep + 0x50, want, 64);
	free(rep);
	json_decref(j);

	struct { const char *req; const char *status; } cases[] = {
		{"GET /aa/evidence HTTP/1.1\r\n\r\n", "400"},
		{"GET /aa/evidence?runtime_data=%zz HTTP/1.1\r\n\r\n", "400"},
		{"GET /aa/evidence?runtime_data=%4 HTTP/1.1\r\n\r\n", "400"},
		{"POST /aa/evidence?runtime_data=a HTTP/1.1\r\n\r\n", "405"},
		{"GET /cdh/resource/default/key/1 HTTP/1.1\r\n\r\n", "501"},
		{"GET /aa/token?token_type=kbs HTTP/1.1\r\n\r\n", "501"},
		{"GET /aa/token HTTP/1.1\r\n\r\n", "400"},
		{"GET /aa/token?token_type=coco_as HTTP/1.1\r\n\r\n", "400"},
		{"GET /aa/token?token_type=kb%73x HTTP/1.1\r\n\r\n", "400"},
		{"GET /aa/token?token_type=%zz HTTP/1.1\r\n\r\n", "400"},
		{"GET /cdh/resource/../key/1 HTTP/1.1\r\n\r\n", "400"},
		{"GET /cdh/resource/a/b HTTP/1.1\r\n\r\n", "400"},
		{"GET /cdh/resource/a/b/c/d HTTP/1.1\r\n\r\n", "400"},
		{"GET /cdh/resource/a/b/" "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 HTTP/1.1\r\n\r\n", "400"},
		{"GET /etc/passwd HTTP/1.1\r\n\r\n", "404"},
		{"GET / HTTP/2.0\r\n\r\n", "505"},
		{"garbage", "400"},
		{"GET\r\n\r\n", "400"},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
		_cleanup_free_ char *x = http(f->a, cases[i].req);
		if (strncmp(x + 9, cases[i].status, 3) != 0)
			fail_msg("%s -> %.40s, want %s", cases[i].req, x, cases[i].status);
	}
}


/* ---- the container machinery, past the gate ----
 * These call the handlers directly (with the agent lock held, as the
 * dispatcher does): the gate is tested above and through the socket. */

static int H_create(fixture *f, const char *id, const char *spec)
{
	ACreateContainer q = SEALPOD__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	q.container_id = (char *)id;
	q.oci_spec.data = (uint8_t *)spec;
	q.oci_spec.len = strlen(spec);
	reply r = {0};
	pthread_mutex_lock(&f->a->lock);
	void *change = NULL;
	int rc = h_create_container(f->a, &q, &change, &r);
	pthread_mutex_unlock(&f->a->lock);
	if (rc)
		fprintf(stderr, "create: %s\n", r.msg);
	free(r.out);
	free(r.msg);
	return rc;
}

static int H_start(fixture *f, const char *id)
{
	AStartContainer q = SEALPOD__AGENT__V1__START_CONTAINER_REQUEST__INIT;
	q.container_id = (char *)id;
	reply r = {0};
	pthread_mutex_lock(&f->a->lock);
	int rc = h_start_container(f->a, &q, &r);
	pthread_mutex_unlock(&f->a->lock);
	free(r.out);
	free(r.msg);
	return rc;
}

static int H_exec(fixture *f, const char *id, const char *eid, const char *process)
{
	AExecProcess q = SEALPOD__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
	q.container_id = (char *)id;
	q.exec_id = (char *)eid;
	q.process.data = (uint8_t *)process;
	q.process.len = strlen(process);
	reply r = {0};
	pthread_mutex_lock(&f->a->lock);
	void *change = NULL;
	int rc = h_exec_process(f->a, &q, &change, &r);
	pthread_mutex_unlock(&f->a->lock);
	if (rc)
		fprintf(stderr, "exec: %s\n", r.msg);
	free(r.out);
	free(r.msg);
	return rc;
}

/* Reads a stream to EOF; returns the bytes (NUL-terminated). */
static char *H_read_all(fixture *f, const char *id, const char *eid, int which,
			size_t chunk, unsigned delay_us, size_t *total)
{
	sp_buf b = SP_BUF_INIT;
	for (;;) {
		AReadStream q = SEALPOD__AGENT__V1__READ_STREAM_REQUEST__INIT;
		q.container_id = (char *)id;
		q.exec_id = (char *)eid;
		q.len = (uint32_t)chunk;
		reply r = {0};
		pthread_mutex_lock(&f->a->lock);
		int rc = h_read_stream(f->a, &q, which, sp_now_ns() + 10000000000ull, &r);
		pthread_mutex_unlock(&f->a->lock);
		if (rc != SP_RPC_OK)
			fail_msg("read: %s", r.msg);
		Sealpod__Agent__V1__ReadStreamResponse *m =
			sealpod__agent__v1__read_stream_response__unpack(NULL, r.out_len, r.out);
		free(r.out);
		size_t n = m->data.len;
		sp_buf_put(&b, m->data.data, n);
		sealpod__agent__v1__read_stream_response__free_unpacked(m, NULL);
		if (n == 0)
			break;
		if (delay_us)
			usleep(delay_us);
	}
	*total = b.len;
	sp_buf_terminate(&b);
	return (char *)b.data;
}

static int H_wait(fixture *f, const char *id, const char *eid)
{
	AWaitProcess q = SEALPOD__AGENT__V1__WAIT_PROCESS_REQUEST__INIT;
	q.container_id = (char *)id;
	q.exec_id = (char *)eid;
	reply r = {0};
	pthread_mutex_lock(&f->a->lock);
	int rc = h_wait_process(f->a, &q, sp_now_ns() + 10000000000ull, &r);
	pthread_mutex_unlock(&f->a->lock);
	if (rc != SP_RPC_OK)
		fail_msg("wait: %s", r.msg);
	Sealpod__Agent__V1__WaitProcessResponse *m =
		sealpod__agent__v1__wait_process_response__unpack(NULL, r.out_len, r.out);
	int st = m->status;
	sealpod__agent__v1__wait_process_response__free_unpacked(m, NULL);
	free(r.out);
	return st;
}

static int H_remove(fixture *f, const char *id)
{
	ARemoveContainer q = SEALPOD__AGENT__V1__REMOVE_CONTAINER_REQUEST__INIT;
	q.container_id = (char *)id;
	q.timeout = 1;
	reply r = {0};
	pthread_mutex_lock(&f->a->lock);
	int rc = h_remove_container(f->a, &q, sp_now_ns() + 10000000000ull, &r);
	pthread_mutex_unlock(&f->a->lock);
	free(r.out);
	free(r.msg);
	return rc;
}

static void test_lifecycle(void **state)
{
	fixture *f = *state;
	size_t n;
	assert_int_equal(H_create(f, "c1", "{\"ociVersion\":\"1.1.0\",\"process\":{\"args\":[\"/bin/sh\",\"-c\","
				  "\"echo out; echo err >&2; exit 3\"],\"cwd\":\"/\"}}"), 0);
	/* Created: nothing runs until StartContainer. */
	usleep(100000);
	pthread_mutex_lock(&f->a->lock);
	assert_int_equal(container_find(f->a, "c1")->procs->state, PROC_CREATED);
	pthread_mutex_unlock(&f->a->lock);
	assert_int_equal(H_create(f, "c1", "{\"ociVersion\":\"1.1.0\",\"process\":{\"args\":[\"true\"]}}"),
			 SP_RPC_ALREADY_EXISTS);
	assert_int_equal(H_start(f, "c1"), 0);
	assert_int_equal(H_start(f, "c1"), SP_RPC_FAILED_PRECONDITION);
	_cleanup_free_ char *out = H_read_all(f, "c1", "", 1, 0, 0, &n);
	assert_string_equal(out, "out\n");
	_cleanup_free_ char *err = H_read_all(f, "c1", "", 2, 0, 0, &n);
	assert_string_equal(err, "err\n");
	assert_int_equal(H_wait(f, "c1", ""), 3);
	/* The status stays until the container is removed. */
	assert_int_equal(H_wait(f, "c1", ""), 3);
	_cleanup_free_ char *bundle = sp_xasprintf("%s/containers/c1", f->dir);
	struct stat st;
	assert_int_equal(stat(bundle, &st), 0);
	assert_int_equal(H_remove(f, "c1"), 0);
	assert_int_not_equal(stat(bundle, &st), 0);
	assert_int_equal(H_remove(f, "c1"), SP_RPC_NOT_FOUND);
}

static void test_exec_stdin_and_slow_reader(void **state)
{
	fixture *f = *state;
	size_t n;
	assert_int_equal(H_create(f, "c2", "{\"ociVersion\":\"1.1.0\",\"process\":{\"args\":[\"sleep\",\"30\"],"
				  "\"env\":[\"PATH=/usr/bin:/bin\"]}}"), 0);
	assert_int_equal(H_start(f, "c2"), 0);
	/* stdin through cat. */
	assert_int_equal(H_exec(f, "c2", "e1", "{\"args\":[\"/bin/cat\"]}"), 0);
	assert_int_equal(H_exec(f, "c2", "e1", "{\"args\":[\"/bin/cat\"]}"), SP_RPC_ALREADY_EXISTS);
	AWriteStream w = SEALPOD__AGENT__V1__WRITE_STREAM_REQUEST__INIT;
	w.container_id = (char *)"c2";
	w.exec_id = (char *)"e1";
	w.data.data = (uint8_t *)"hi there";
	w.data.len = 8;
	reply r = {0};
	pthread_mutex_lock(&f->a->lock);
	assert_int_equal(h_write_stdin(f->a, &w, sp_now_ns() + 5000000000ull, &r), 0);
	ACloseStdin cs = SEALPOD__AGENT__V1__CLOSE_STDIN_REQUEST__INIT;
	cs.container_id = (char *)"c2";
	cs.exec_id = (char *)"e1";
	free(r.out);
	r.out = NULL;
	assert_int_equal(h_close_stdin(f->a, &cs, &r), 0);
	free(r.out);
	r.out = NULL;
	pthread_mutex_unlock(&f->a->lock);
	_cleanup_free_ char *echo = H_read_all(f, "c2", "e1", 1, 0, 0, &n);
	assert_string_equal(echo, "hi there");
	assert_int_equal(H_wait(f, "c2", "e1"), 0);

	/* 3 MiB through a 1 MiB buffer: the writer blocks, nothing is lost. */
	assert_int_equal(H_exec(f, "c2", "big",
				"{\"args\":[\"/bin/sh\",\"-c\",\"head -c 3145728 /dev/zero\"]}"), 0);
	usleep(500000);
	pthread_mutex_lock(&f->a->lock);
	proc *p = proc_find(container_find(f->a, "c2"), "big");
	assert_non_null(p);
	assert_int_equal(p->out.len, p->out.cap);
	assert_int_not_equal(p->state, PROC_EXITED);
	pthread_mutex_unlock(&f->a->lock);
	_cleanup_free_ char *big = H_read_all(f, "c2", "big", 1, 200000, 1000, &n);
	assert_non_null(big);
	assert_int_equal(n, 3145728);
	assert_int_equal(H_wait(f, "c2", "big"), 0);

	/* Exec exit code and a missing program. */
	assert_int_equal(H_exec(f, "c2", "e2", "{\"args\":[\"/bin/sh\",\"-c\",\"exit 7\"]}"), 0);
	assert_int_equal(H_wait(f, "c2", "e2"), 7);
	assert_int_not_equal(H_exec(f, "c2", "e3", "{\"args\":[\"/no/such\"]}"), 0);
	/* Removing a running container kills it. */
	assert_int_equal(H_remove(f, "c2"), 0);
}

static void test_terminal_resize(void **state)
{
	fixture *f = *state;
	size_t n;
	assert_int_equal(H_create(f, "c3", "{\"ociVersion\":\"1.1.0\",\"process\":{\"args\":[\"sleep\",\"30\"]}}"), 0);
	assert_int_equal(H_start(f, "c3"), 0);
	assert_int_equal(H_exec(f, "c3", "t", "{\"terminal\":true,\"args\":[\"/bin/sh\",\"-c\","
				"\"sleep 0.5; stty size\"]}"), 0);
	ATtyWinResize q = SEALPOD__AGENT__V1__TTY_WIN_RESIZE_REQUEST__INIT;
	q.container_id = (char *)"c3";
	q.exec_id = (char *)"t";
	q.row = 40;
	q.column = 100;
	reply r = {0};
	pthread_mutex_lock(&f->a->lock);
	assert_int_equal(h_tty_win_resize(f->a, &q, &r), 0);
	pthread_mutex_unlock(&f->a->lock);
	free(r.out);
	_cleanup_free_ char *out = H_read_all(f, "c3", "t", 1, 0, 0, &n);
	assert_non_null(strstr(out, "40 100"));
	assert_int_equal(H_wait(f, "c3", "t"), 0);
	assert_int_equal(H_remove(f, "c3"), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_before_policy_only_three_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_policy_wrong_hash_refused, setup, teardown),
		cmocka_unit_test(test_set_policy_without_tee),
		cmocka_unit_test(test_stream_ring_wraps_and_backpressures),
		cmocka_unit_test_setup_teardown(test_copy_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attest_endpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_stdin_and_slow_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_terminal_resize, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
