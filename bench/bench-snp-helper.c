/* SPDX-License-Identifier: Apache-2.0 */
/* Helper for bench/bench-snp: report verifications per second with the
 * chain cached, and the time to measure a firmware image, in-process. */
#include <string.h>
#include <time.h>

#include "sealpod/file.h"
#include "sealpod/snp.h"

/* openssl speed counts user CPU time, not wall time; on a shared machine
 * the two differ a lot, so the helper counts CPU time too. */
static double cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *load(const char *p, size_t *n)
{
	uint8_t *d = NULL;
	sp_err *err = NULL;
	if (sp_read_file(&d, n, p, 1 << 26, &err) < 0) {
		fprintf(stderr, "%s\n", sp_err_msg(err));
		exit(1);
	}
	return d;
}

int main(int argc, char **argv)
{
	sp_err *err = NULL;
	if (argc == 5 && !strcmp(argv[1], "verify")) {
		/* verify REPORT VCEK SECONDS */
		size_t rl, vl;
		uint8_t *rep = load(argv[2], &rl), *vek = load(argv[3], &vl);
		double secs = atof(argv[4]);
		sp_snp_verifier *v = sp_snp_verifier_new();
		if (sp_snp_verifier_add_certs(v, vek, vl, &err) < 0)
			goto fail;
		sp_snp_appraisal a;
		sp_snp_appraisal_init(&a);
		a.allow_debug = true;
		if (sp_snp_verify(v, rep, rl, &a, NULL, &err) < 0) /* warm */
			goto fail;
		double start = cpu_seconds();
		uint64_t n = 0;
		while (cpu_seconds() - start < secs) {
			for (int i = 0; i < 16; i++)
				if (sp_snp_verify(v, rep, rl, &a, NULL, &err) < 0)
					goto fail;
			n += 16;
		}
		double el = cpu_seconds() - start;
		printf("%.1f\n", (double)n / el);
		sp_snp_verifier_free(v);
		free(rep);
		free(vek);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "measure")) {
		/* measure OVMF N: mean milliseconds per digest */
		sp_snp_measure_opts o;
		sp_snp_measure_opts_init(&o);
		o.ovmf = argv[2];
		o.vcpu_type = "EPYC-v4";
		int n = atoi(argv[3]);
		uint8_t d[48];
		uint64_t start = sp_now_ns();
		for (int i = 0; i < n; i++)
			if (sp_snp_measure(d, &o, &err) < 0)
				goto fail;
		printf("%.3f\n", (double)(sp_now_ns() - start) / 1e6 / n);
		return 0;
	}
	fprintf(stderr, "usage: %s verify REPORT VCEK SECONDS | measure OVMF N\n",
		argv[0]);
	return 2;
fail:
	fprintf(stderr, "%s\n", sp_err_msg(err));
	return 1;
}
