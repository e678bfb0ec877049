/* SPDX-License-Identifier: Apache-2.0 */
/* The guest's TEE (include/sealpod/tee.h): SEV-SNP reports from
 * configfs-tsm or /dev/sev-guest, or from a sim PSP over a virtio-serial
 * port or a unix socket. */
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <openssl/rand.h>

#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/log.h"
#include "sealpod/snp.h"
#include "sealpod/tee.h"
#include "tee-abi.h"

#define TSM_REPORT_DIR "/sys/kernel/config/tsm/report"
#define SEV_GUEST_DEV "/dev/sev-guest"
#define SIM_PORT_DEV "/dev/virtio-ports/" SP_SIM_PSP_PORT
#define SIM_TIMEOUT_MS 30000
#define CERTS_MAX (64u * 4096)

enum tee_kind { TEE_NONE, TEE_SNP_TSM, TEE_SNP_IOCTL, TEE_SIM };

struct sp_tee {
	int kind;
	char *path;
};

int sp_tee_open(sp_tee **out, const char *spec, sp_err **err)
{
	sp_tee *t = sp_xzalloc(sizeof(*t));
	struct stat st;
	if (!strcmp(spec, "none")) {
		t->kind = TEE_NONE;
	} else if (!strcmp(spec, "snp") || !strcmp(spec, "auto")) {
		/* A kernel with configfs-tsm built in (sealpod's) has the
		 * report directory even outside SNP, where making a report
		 * fails with ENXIO; the sev-guest driver's device exists only
		 * in an SNP guest, and that driver is the tsm provider. */
		bool sev = access(SEV_GUEST_DEV, F_OK) == 0;
		if (sev && stat(TSM_REPORT_DIR, &st) == 0 && S_ISDIR(st.st_mode)) {
			t->kind = TEE_SNP_TSM;
		} else if (sev) {
			t->kind = TEE_SNP_IOCTL;
		} else if (!strcmp(spec, "auto") && access(SIM_PORT_DEV, F_OK) == 0) {
			t->kind = TEE_SIM;
			t->path = sp_xstrdup(SIM_PORT_DEV);
		} else if (!strcmp(spec, "auto")) {
			t->kind = TEE_NONE;
		} else {
			free(t);
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"TEE snp: neither %s nor %s exists; is "
					"this an SEV-SNP guest with the sev-guest "
					"driver loaded?", TSM_REPORT_DIR,
					SEV_GUEST_DEV);
		}
	} else if (!strncmp(spec, "sim:", 4) && spec[4]) {
		if (stat(spec + 4, &st) < 0) {
			int e = errno;
			free(t);
			return sp_error_sys(err, e, "TEE sim: %s", spec + 4);
		}
		if (!S_ISSOCK(st.st_mode) && !S_ISCHR(st.st_mode)) {
			free(t);
			return sp_error(err, SP_ERR_INVALID,
					"TEE sim: %s is neither a character "
					"device nor a unix socket", spec + 4);
		}
		t->kind = TEE_SIM;
		t->path = sp_xstrdup(spec + 4);
	} else {
		free(t);
		return sp_error(err, SP_ERR_INVALID,
				"TEE spec `%s`: want auto, snp, sim:PATH or none",
				spec);
	}
	*out = t;
	return 0;
}

const char *sp_tee_kind(const sp_tee *t)
{
	switch (t->kind) {
	case TEE_SNP_TSM:
	case TEE_SNP_IOCTL: return "snp";
	case TEE_SIM: return "sim";
	default: return "none";
	}
}

void sp_tee_free(sp_tee *t)
{
	if (!t)
		return;
	free(t->path);
	free(t);
}

/* ---- sim transport --------------------------------------------------- */

static int open_sim(const char *path, sp_err **err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return sp_error_sys(err, errno, "TEE sim: %s", path);
	if (S_ISSOCK(st.st_mode)) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return sp_error_sys(err, errno, "TEE sim: socket");
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		if (strlen(path) >= sizeof(sa.sun_path)) {
			close(fd);
			return sp_error(err, SP_ERR_INVALID,
					"TEE sim: path %s is too long", path);
		}
		strcpy(sa.sun_path, path);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			int e = errno;
			close(fd);
			return sp_error_sys(err, e, "TEE sim: connect %s", path);
		}
		return fd;
	}
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return sp_error_sys(err, errno, "TEE sim: open %s", path);
	return fd;
}

static int read_timeout(int fd, void *buf, size_t len, sp_err **err)
{
	size_t got = 0;
	uint64_t deadline = sp_now_ns() + (uint64_t)SIM_TIMEOUT_MS * 1000000;
	while (got < len) {
		uint64_t now = sp_now_ns();
		if (now >= deadline)
			return sp_error(err, SP_ERR_TIMEOUT,
					"TEE sim: no answer from the sim PSP "
					"within %d s", SIM_TIMEOUT_MS / 1000);
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int n = poll(&pf, 1, (int)((deadline - now) / 1000000) + 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sp_error_sys(err, errno, "TEE sim: poll");
		if (n == 0)
			continue;
		ssize_t r = read(fd, (uint8_t *)buf + got, len - got);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return sp_error_sys(err, errno, "TEE sim: read");
		if (r == 0) {
			/* A virtio port reads 0 while the host side is
			 * not connected; keep waiting until the deadline. */
			struct timespec ts = {0, 20 * 1000000};
			nanosleep(&ts, NULL);
			continue;
		}
		got += (size_t)r;
	}
	return 0;
}

static int sim_report(sp_tee *t, const uint8_t rd[64], uint8_t **report,
		      size_t *report_len, uint8_t **certs, size_t *certs_len,
		      sp_err **err)
{
	_cleanup_close_ int fd = open_sim(t->path, err);
	if (fd < 0)
		return -1;
	uint32_t id;
	RAND_bytes((unsigned char *)&id, sizeof(id));
	size_t qlen;
	_cleanup_free_ uint8_t *req = sp_simpsp_encode_request(id, rd, 0, &qlen);
	if (sp_write_all(fd, req, qlen) < 0)
		return sp_error_sys(err, errno, "TEE sim: write %s", t->path);
	_cleanup_free_ uint8_t *body = sp_xmalloc(SP_SIMPSP_MAX_BODY);
	/* Skip stale answers to an earlier, abandoned request. */
	for (int tries = 0; tries < 4; tries++) {
		uint8_t hdr[SP_SIMPSP_HDR_LEN];
		if (read_timeout(fd, hdr, sizeof(hdr), err) < 0)
			return -1;
		sp_simpsp_frame f;
		if (sp_simpsp_parse_header(&f, hdr, sizeof(hdr), err) < 0)
			return sp_error_wrap(err, "TEE sim");
		if (read_timeout(fd, body, f.body_len, err) < 0)
			return -1;
		if (f.type != SP_SIMPSP_RESP_REPORT || f.id != id)
			continue;
		uint32_t status;
		const uint8_t *r, *c;
		size_t rl, cl;
		if (sp_simpsp_parse_response(body, f.body_len, &status, &r, &rl,
					     &c, &cl, err) < 0)
			return sp_error_wrap(err, "TEE sim");
		if (status != SP_SIMPSP_OK)
			return sp_error(err, SP_ERR_PROTOCOL,
					"TEE sim: the sim PSP refused the request "
					"(status %u)", status);
		*report = sp_xmemdup(r, rl);
		*report_len = rl;
		if (certs) {
			*certs = cl ? sp_xmemdup(c, cl) : NULL;
			*certs_len = cl;
		}
		return 0;
	}
	return sp_error(err, SP_ERR_PROTOCOL,
			"TEE sim: no answer matched the request");
}

/* ---- configfs-tsm ---------------------------------------------------- */

static int tsm_write(const char *dir, const char *name, const void *data,
		     size_t len, sp_err **err)
{
	_cleanup_free_ char *p = sp_xasprintf("%s/%s", dir, name);
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || sp_write_all(fd, data, len) < 0)
		return sp_error_sys(err, errno, "TEE snp: write %s", p);
	return 0;
}

static int tsm_read(const char *dir, const char *name, uint8_t **out,
		    size_t *len, size_t max, sp_err **err)
{
	_cleanup_free_ char *p = sp_xasprintf("%s/%s", dir, name);
	return sp_read_file(out, len, p, max, err);
}

static int tsm_generation(const char *dir, unsigned long *gen, sp_err **err)
{
	_cleanup_free_ uint8_t *g = NULL;
	size_t n = 0;
	if (tsm_read(dir, "generation", &g, &n, 64, err) < 0)
		return -1;
	*gen = strtoul((char *)g, NULL, 10);
	return 0;
}

static int tsm_report(const uint8_t rd[64], uint8_t **report,
		      size_t *report_len, uint8_t **certs, size_t *certs_len,
		      sp_err **err)
{
	static unsigned counter;
	_cleanup_free_ char *dir = sp_xasprintf(
		"%s/sealpod-%d-%u", TSM_REPORT_DIR, (int)getpid(),
		__atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	if (mkdir(dir, 0700) < 0)
		return sp_error_sys(err, errno, "TEE snp: mkdir %s", dir);
	int rc = -1;
	unsigned long g0, g1;
	uint8_t *out = NULL;
	size_t n = 0;
	if (tsm_write(dir, "inblob", rd, 64, err) < 0 ||
	    tsm_generation(dir, &g0, err) < 0 ||
	    tsm_read(dir, "outblob", &out, &n, 32 * 1024, err) < 0)
		goto done;
	if (certs) {
		*certs = NULL;
		*certs_len = 0;
		_cleanup_err_ sp_err *aerr = NULL;
		if (tsm_read(dir, "auxblob", certs, certs_len, 32 * 1024,
			     &aerr) < 0)
			sp_log_debug("TEE snp: no auxblob: %s", sp_err_msg(aerr));
	}
	if (tsm_generation(dir, &g1, err) < 0)
		goto done;
	if (g1 != g0) {
		sp_error(err, SP_ERR_STATE,
			 "TEE snp: %s was written while reading the report "
			 "(generation %lu -> %lu); retry", dir, g0, g1);
		goto done;
	}
	if (n < SP_SNP_REPORT_LEN) {
		sp_error(err, SP_ERR_PROTOCOL,
			 "TEE snp: outblob has %zu bytes (want %d)", n,
			 SP_SNP_REPORT_LEN);
		goto done;
	}
	*report = out;
	*report_len = SP_SNP_REPORT_LEN;
	out = NULL;
	rc = 0;
done:
	free(out);
	if (rc < 0 && certs) {
		free(*certs);
		*certs = NULL;
	}
	rmdir(dir);
	return rc;
}

/* ---- /dev/sev-guest -------------------------------------------------- */

static int ioctl_report(const uint8_t rd[64], uint8_t **report,
			size_t *report_len, uint8_t **certs, size_t *certs_len,
			sp_err **err)
{
	_cleanup_close_ int fd = open(SEV_GUEST_DEV, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return sp_error_sys(err, errno, "TEE snp: open %s",
				    SEV_GUEST_DEV);
	struct tee_snp_report_req req;
	memset(&req, 0, sizeof(req));
	memcpy(req.user_data, rd, 64);
	req.vmpl = 0;
	struct tee_snp_report_resp resp;
	memset(&resp, 0, sizeof(resp));
	struct tee_snp_guest_request_ioctl io;
	bool have = false;

	if (certs) {
		*certs = NULL;
		*certs_len = 0;
		uint32_t clen = 4 * 4096;
		for (int tries = 0; tries < 2 && !have; tries++) {
			void *buf = aligned_alloc(4096, clen);
			if (!buf)
				sp_oom();
			memset(buf, 0, clen);
			struct tee_snp_ext_report_req ext;
			memset(&ext, 0, sizeof(ext));
			ext.data = req;
			ext.certs_address = (uint64_t)(uintptr_t)buf;
			ext.certs_len = clen;
			memset(&io, 0, sizeof(io));
			io.msg_version = 1;
			io.req_data = (uint64_t)(uintptr_t)&ext;
			io.resp_data = (uint64_t)(uintptr_t)&resp;
			if (ioctl(fd, TEE_SNP_GET_EXT_REPORT, &io) == 0) {
				*certs = buf;
				*certs_len = clen;
				have = true;
			} else {
				free(buf);
				/* Too small: the host says how much. */
				if (io.vmm_error == TEE_SNP_VMM_ERR_INVALID_LEN &&
				    ext.certs_len > clen &&
				    ext.certs_len <= CERTS_MAX) {
					clen = (ext.certs_len + 4095) & ~4095u;
					continue;
				}
				sp_log_debug("TEE snp: extended report failed "
					     "(fw %u vmm %u); plain report",
					     io.fw_error, io.vmm_error);
				break;
			}
		}
	}
	if (!have) {
		memset(&io, 0, sizeof(io));
		io.msg_version = 1;
		io.req_data = (uint64_t)(uintptr_t)&req;
		io.resp_data = (uint64_t)(uintptr_t)&resp;
		if (ioctl(fd, TEE_SNP_GET_REPORT, &io) < 0)
			return sp_error_sys(err, errno,
					    "TEE snp: SNP_GET_REPORT (firmware "
					    "error %u, VMM error %u)",
					    io.fw_error, io.vmm_error);
	}
	uint32_t status = sp_le32(resp.data), size = sp_le32(resp.data + 4);
	if (status != 0 || size < SP_SNP_REPORT_LEN ||
	    size > sizeof(resp.data) - 0x20) {
		if (certs) {
			free(*certs);
			*certs = NULL;
		}
		return sp_error(err, SP_ERR_PROTOCOL,
				"TEE snp: the PSP answered status 0x%x with a "
				"%u-byte report", status, size);
	}
	*report = sp_xmemdup(resp.data + 0x20, SP_SNP_REPORT_LEN);
	*report_len = SP_SNP_REPORT_LEN;
	return 0;
}

int sp_tee_get_report(sp_tee *t, const uint8_t report_data[SP_TEE_REPORT_DATA_LEN],
		      uint8_t **report, size_t *report_len, uint8_t **certs,
		      size_t *certs_len, sp_err **err)
{
	if (certs) {
		*certs = NULL;
		*certs_len = 0;
	}
	switch (t->kind) {
	case TEE_SNP_TSM:
		return tsm_report(report_data, report, report_len, certs,
				  certs_len, err);
	case TEE_SNP_IOCTL:
		return ioctl_report(report_data, report, report_len, certs,
				    certs_len, err);
	case TEE_SIM:
		return sim_report(t, report_data, report, report_len, certs,
				  certs_len, err);
	default:
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"TEE: this guest has no TEE (no SEV-SNP device "
				"and no sim PSP port %s)", SIM_PORT_DEV);
	}
}
