/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod sim-psp: run the sim PSP (serve), make one sim report directly
 * (--out), or ask a TEE for a report as the guest would (--tee). */
#include <getopt.h>
#include <signal.h>
#include <string.h>

#include "cli.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/snp.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealpod sim-psp --listen unix:PATH|--connect PATH "
		"[--state DIR]\n"
		"           [--measurement HEX | --ovmf F --vcpus N "
		"--vcpu-type T [--kernel K --initrd I --append A]]\n"
		"           [--host-data HEX] [--policy HEX]\n"
		"       sealpod sim-psp --out REPORT [--certs FILE] "
		"[--report-data HEX] [--vmpl N] (same options)\n"
		"       sealpod sim-psp --tee SPEC --out REPORT [--certs FILE] "
		"[--report-data HEX]\n"
		"The sim root certificate is STATE/ark.pem (default state: %s).\n",
		sp_simpsp_default_state());
}

static int stop_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	char c = 1;
	if (write(stop_pipe[1], &c, 1) < 0) {
		/* nothing more to do in a signal handler */
	}
}

static int write_out(const char *path, const void *d, size_t n)
{
	_cleanup_err_ sp_err *err = NULL;
	if (sp_write_file_atomic(path, d, n, 0644, &err) < 0) {
		fprintf(stderr, "sealpod sim-psp: %s\n", sp_err_msg(err));
		return -1;
	}
	return 0;
}

int cmd_simpsp(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"connect", required_argument, NULL, 'c'},
		{"state", required_argument, NULL, 's'},
		{"measurement", required_argument, NULL, 'm'},
		{"host-data", required_argument, NULL, 'H'},
		{"policy", required_argument, NULL, 'p'},
		{"ovmf", required_argument, NULL, 'o'},
		{"vcpus", required_argument, NULL, 'n'},
		{"vcpu-type", required_argument, NULL, 't'},
		{"kernel", required_argument, NULL, 'k'},
		{"initrd", required_argument, NULL, 'i'},
		{"append", required_argument, NULL, 'a'},
		{"sim-direct-boot", no_argument, NULL, 'D'},
		{"out", required_argument, NULL, 'O'},
		{"certs", required_argument, NULL, 'C'},
		{"report-data", required_argument, NULL, 'r'},
		{"vmpl", required_argument, NULL, 'V'},
		{"tee", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	sp_simpsp_config cfg;
	sp_simpsp_config_init(&cfg);
	sp_snp_measure_opts mo;
	sp_snp_measure_opts_init(&mo);
	const char *listen = NULL, *connect_to = NULL, *out = NULL,
		   *certs_out = NULL, *tee_spec = NULL;
	bool have_launch = false, have_meas = false;
	uint8_t rd[64] = {0};
	unsigned long vmpl = 0;
	_cleanup_err_ sp_err *err = NULL;
	char *end;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'c': connect_to = optarg; break;
		case 's': cfg.state_dir = optarg; break;
		case 'm':
			if (sp_hex_decode(cfg.measurement, 48, optarg, &err) < 0)
				goto bad_hex;
			have_meas = true;
			break;
		case 'H':
			if (sp_hex_decode(cfg.host_data, 32, optarg, &err) < 0)
				goto bad_hex;
			break;
		case 'r': {
			/* Shorter values are zero-padded, as REPORT_DATA is. */
			uint8_t *d = NULL;
			size_t n = 0;
			if (sp_hex_decode_alloc(&d, &n, optarg, &err) < 0)
				goto bad_hex;
			if (n > 64) {
				free(d);
				fprintf(stderr, "sealpod sim-psp: --report-data "
					"has %zu bytes (at most 64)\n", n);
				return 2;
			}
			memcpy(rd, d, n);
			free(d);
			break;
		}
		case 'p':
			errno = 0;
			cfg.policy = strtoull(optarg, &end, 16);
			if (errno || *end) {
				fprintf(stderr, "sealpod sim-psp: --policy `%s` "
					"is not hex\n", optarg);
				return 2;
			}
			break;
		case 'o': mo.ovmf = optarg; have_launch = true; break;
		case 'n': mo.vcpus = (unsigned)strtoul(optarg, NULL, 10); break;
		case 't': mo.vcpu_type = optarg; break;
		case 'k': mo.kernel = optarg; have_launch = true; break;
		case 'i': mo.initrd = optarg; break;
		case 'a': mo.append = optarg; break;
		case 'D': mo.sim_direct_boot = true; break;
		case 'O': out = optarg; break;
		case 'C': certs_out = optarg; break;
		case 'V':
			vmpl = strtoul(optarg, &end, 10);
			if (*end || vmpl > 3) {
				fprintf(stderr, "sealpod sim-psp: --vmpl `%s`: "
					"want 0-3\n", optarg);
				return 2;
			}
			break;
		case 'T': tee_spec = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || (!listen && !connect_to && !out) ||
	    (have_launch && have_meas)) {
		usage(stderr);
		return 2;
	}
	uint8_t *report = NULL, *certs = NULL;
	size_t rl = 0, cl = 0;
	if (tee_spec) {
		sp_tee *t = NULL;
		if (sp_tee_open(&t, tee_spec, &err) < 0 ||
		    sp_tee_get_report(t, rd, &report, &rl, &certs, &cl,
				      &err) < 0) {
			sp_tee_free(t);
			fprintf(stderr, "sealpod sim-psp: %s\n", sp_err_msg(err));
			return 1;
		}
		sp_tee_free(t);
		goto write;
	}
	if (have_launch)
		cfg.launch = &mo;
	sp_simpsp *p = NULL;
	if (sp_simpsp_new(&p, &cfg, &err) < 0) {
		fprintf(stderr, "sealpod sim-psp: %s\n", sp_err_msg(err));
		return 1;
	}
	if (out) {
		int rc = sp_simpsp_make_report(p, rd, (uint32_t)vmpl, &report,
					       &rl, &certs, &cl, &err);
		sp_simpsp_free(p);
		if (rc < 0) {
			fprintf(stderr, "sealpod sim-psp: %s\n", sp_err_msg(err));
			return 1;
		}
		goto write;
	}
	if (pipe(stop_pipe) < 0) {
		perror("sealpod sim-psp: pipe");
		sp_simpsp_free(p);
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	char *spec = listen ? sp_xstrdup(listen)
			    : sp_xasprintf("connect:%s", connect_to);
	fprintf(stderr, "sealpod sim-psp: serving %s; root certificate %s\n",
		spec, sp_simpsp_root_path(p));
	int rc = sp_simpsp_serve(p, spec, stop_pipe[0], &err);
	sp_simpsp_free(p);
	free(spec);
	if (rc < 0) {
		fprintf(stderr, "sealpod sim-psp: %s\n", sp_err_msg(err));
		return 1;
	}
	return 0;
write:;
	int wrc = write_out(out, report, rl);
	if (wrc == 0 && certs_out)
		wrc = write_out(certs_out, certs ? certs : (uint8_t *)"", cl);
	free(report);
	free(certs);
	return wrc < 0 ? 1 : 0;
bad_hex:
	fprintf(stderr, "sealpod sim-psp: %s\n", sp_err_msg(err));
	return 2;
}
