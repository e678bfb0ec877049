/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod verify: check an SEV-SNP report end to end and print its claims;
 * sealpod report show: print a report as JSON without verifying it. */
#include <getopt.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/release.h"
#include "sealpod/snp.h"

#define MAX_INPUT (1024 * 1024)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealpod verify --report R [--vcek C] [--chain P] "
		"[--certs TABLE]\n"
		"         [--at TIME] [--allow-sim] [--sim-root PEM] "
		"[--kds-cache DIR [--offline]]\n"
		"         [--expect-host-data HEX] [--expect-report-data HEX]\n"
		"         [--expect-measurement HEX ...] [--allow-debug]\n"
		"         [--min-tcb bl=N,tee=N,snp=N,ucode=N[,fmc=N]] "
		"[--vmpl N] [--min-guest-svn N]\n"
		"         [--manifest FILE --manifest-key PUB [--manifest-sig SIG]]\n"
		"R: the 1184-byte report, raw or hex. TIME: seconds since the "
		"epoch or YYYY-MM-DD[THH:MM:SSZ].\n"
		"--manifest: accept the report only if its measurement is one the release\n"
		"manifest FILE lists, and only if SIG (default FILE.sig) is PUB's Ed25519\n"
		"signature over FILE (docs/guest-image.md).\n");
}

/* A report file may hold the raw bytes or their hex. */
static int load_report(const char *path, uint8_t **out, size_t *len,
		       sp_err **err)
{
	_cleanup_free_ uint8_t *d = NULL;
	size_t n = 0;
	if (sp_read_file(&d, &n, path, MAX_INPUT, err) < 0)
		return -1;
	if (n == SP_SNP_REPORT_LEN) {
		*out = sp_steal_ptr(&d);
		*len = n;
		return 0;
	}
	/* hex, possibly with whitespace */
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (d[i] != ' ' && d[i] != '\n' && d[i] != '\r' && d[i] != '\t')
			d[k++] = d[i];
	d[k] = '\0';
	if (sp_hex_decode_alloc(out, len, (char *)d, err) < 0)
		return sp_error(err, SP_ERR_PARSE,
				"%s: neither a %d-byte report nor its hex", path,
				SP_SNP_REPORT_LEN);
	return 0;
}

static int parse_time(const char *s, time_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!errno && !*end && v > 0) {
		*out = (time_t)v;
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *e = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!e || *e) {
		memset(&tm, 0, sizeof(tm));
		e = strptime(s, "%Y-%m-%d", &tm);
	}
	if (!e || *e)
		return -1;
	*out = timegm(&tm);
	return 0;
}

static int add_file(sp_snp_verifier *v, const char *path, bool table,
		    sp_err **err)
{
	_cleanup_free_ uint8_t *d = NULL;
	size_t n = 0;
	if (sp_read_file(&d, &n, path, MAX_INPUT, err) < 0)
		return -1;
	int rc = table ? sp_snp_verifier_add_cert_table(v, d, n, err)
		       : sp_snp_verifier_add_certs(v, d, n, err);
	return rc < 0 ? sp_error_wrap(err, "%s", path) : 0;
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{"report", required_argument, NULL, 'r'},
		{"vcek", required_argument, NULL, 'v'},
		{"vlek", required_argument, NULL, 'v'},
		{"chain", required_argument, NULL, 'c'},
		{"certs", required_argument, NULL, 'T'},
		{"at", required_argument, NULL, 'a'},
		{"allow-sim", no_argument, NULL, 'S'},
		{"sim-root", required_argument, NULL, 'R'},
		{"kds-cache", required_argument, NULL, 'K'},
		{"offline", no_argument, NULL, 'O'},
		{"expect-host-data", required_argument, NULL, 'H'},
		{"expect-report-data", required_argument, NULL, 'D'},
		{"expect-measurement", required_argument, NULL, 'M'},
		{"allow-debug", no_argument, NULL, 'd'},
		{"min-tcb", required_argument, NULL, 't'},
		{"vmpl", required_argument, NULL, 'V'},
		{"min-guest-svn", required_argument, NULL, 'g'},
		{"manifest", required_argument, NULL, 'm'},
		{"manifest-key", required_argument, NULL, 'k'},
		{"manifest-sig", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	sp_snp_appraisal a;
	sp_snp_appraisal_init(&a);
	const char *report = NULL, *sim_root = NULL, *kds = NULL;
	const char *manifest = NULL, *manifest_key = NULL, *manifest_sig = NULL;
	const char *vek[4], *chains[8], *tables[4];
	size_t n_vek = 0, n_chain = 0, n_table = 0, n_meas = 0;
	bool offline = false;
	_cleanup_free_ uint8_t(*meas)[48] = sp_xcalloc((size_t)argc + 1, 48);
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_free_ uint8_t *raw = NULL;
	_cleanup_json_ json_t *rel = NULL; /* the verified release manifest */
	char *end;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': report = optarg; break;
		case 'v':
			if (n_vek == SP_ARRAY_LEN(vek))
				goto too_many;
			vek[n_vek++] = optarg;
			break;
		case 'c':
			if (n_chain == SP_ARRAY_LEN(chains))
				goto too_many;
			chains[n_chain++] = optarg;
			break;
		case 'T':
			if (n_table == SP_ARRAY_LEN(tables))
				goto too_many;
			tables[n_table++] = optarg;
			break;
		case 'a':
			if (parse_time(optarg, &a.at) < 0) {
				fprintf(stderr, "sealpod verify: --at `%s`: want "
					"seconds since the epoch or "
					"YYYY-MM-DD[THH:MM:SSZ]\n", optarg);
				return 2;
			}
			break;
		case 'S': a.allow_sim = true; break;
		case 'R': sim_root = optarg; break;
		case 'K': kds = optarg; break;
		case 'O': offline = true; break;
		case 'H':
			if (sp_hex_decode(a.host_data, 32, optarg, &err) < 0)
				goto bad_arg;
			a.check_host_data = true;
			break;
		case 'D': {
			/* Shorter values are zero-padded, as REPORT_DATA is. */
			_cleanup_free_ uint8_t *d = NULL;
			size_t n = 0;
			if (sp_hex_decode_alloc(&d, &n, optarg, &err) < 0)
				goto bad_arg;
			if (n > 64) {
				fprintf(stderr, "sealpod verify: "
					"--expect-report-data has %zu bytes "
					"(at most 64)\n", n);
				return 2;
			}
			memset(a.report_data, 0, 64);
			memcpy(a.report_data, d, n);
			a.check_report_data = true;
			break;
		}
		case 'M':
			if (sp_hex_decode(meas[n_meas], 48, optarg, &err) < 0)
				goto bad_arg;
			n_meas++;
			break;
		case 'd': a.allow_debug = true; break;
		case 't':
			if (sp_snp_tcb_parse(&a.min_tcb, optarg, &err) < 0)
				goto bad_arg;
			a.check_min_tcb = true;
			break;
		case 'V': {
			unsigned long vm = strtoul(optarg, &end, 10);
			if (*end || end == optarg || vm > 3) {
				fprintf(stderr, "sealpod verify: --vmpl `%s`: "
					"want 0-3\n", optarg);
				return 2;
			}
			a.vmpl = (int)vm;
			break;
		}
		case 'g':
			a.min_guest_svn = (uint32_t)strtoul(optarg, &end, 0);
			break;
		case 'm': manifest = optarg; break;
		case 'k': manifest_key = optarg; break;
		case 's': manifest_sig = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!manifest != !manifest_key || (manifest_sig && !manifest)) {
		fprintf(stderr, "sealpod verify: --manifest and --manifest-key go together "
				"(--manifest-sig needs them)\n");
		return 2;
	}
	if (optind != argc || !report) {
		fprintf(stderr, "sealpod verify: --report is required\n");
		usage(stderr);
		return 2;
	}
	a.measurements = (const uint8_t(*)[48])meas;
	a.n_measurements = n_meas;

	/* The signed manifest first: a tampered one, or one signed by another
	 * key, is refused whatever the report says. */
	if (manifest) {
		_cleanup_release_key_ sp_release_key *k = NULL;
		if (sp_release_key_load_file(&k, manifest_key, &err) < 0 ||
		    sp_release_verify_files(&rel, k, manifest, manifest_sig, &err) < 0)
			goto fail;
	}
	size_t len = 0;
	if (load_report(report, &raw, &len, &err) < 0)
		goto fail;
	sp_snp_verifier *v = sp_snp_verifier_new();
	int rc = 0;
	for (size_t i = 0; i < n_chain && rc == 0; i++)
		rc = add_file(v, chains[i], false, &err);
	for (size_t i = 0; i < n_table && rc == 0; i++)
		rc = add_file(v, tables[i], true, &err);
	for (size_t i = 0; i < n_vek && rc == 0; i++)
		rc = add_file(v, vek[i], false, &err);
	if (rc == 0 && a.allow_sim) {
		_cleanup_free_ char *def =
			sp_xasprintf("%s/ark.pem", sp_simpsp_default_state());
		const char *root = sim_root ? sim_root : def;
		_cleanup_free_ uint8_t *pem = NULL;
		size_t pn = 0;
		rc = sp_read_file(&pem, &pn, root, MAX_INPUT, &err);
		if (rc < 0)
			sp_error_wrap(&err, "--allow-sim: the sim root");
		else
			rc = sp_snp_verifier_trust_sim_root(v, pem, pn, &err);
	}
	if (kds)
		sp_snp_verifier_set_kds(v, kds, offline);
	json_t *claims = NULL;
	if (rc == 0)
		rc = sp_snp_verify(v, raw, len, &a, &claims, &err);
	sp_snp_verifier_free(v);
	if (rc < 0)
		goto fail;
	if (rel) {
		/* Hardware reports against launch_measurement, sim reports
		 * against sim_launch_measurement. */
		json_t *ver = json_object_get(claims, "verified");
		bool sim = json_is_true(json_object_get(ver, "sim"));
		_cleanup_free_ uint8_t(*want)[48] = NULL;
		size_t nw = 0;
		bool found = false;
		if (sp_release_measurements(&want, &nw, rel, sim, &err) < 0) {
			json_decref(claims);
			goto fail;
		}
		for (size_t i = 0; i < nw; i++)
			found |= sp_memeq_ct(want[i], raw + 0x90, 48);
		if (!found) {
			char hex[97];
			sp_hex_encode(hex, raw + 0x90, 48);
			sp_error(&err, SP_ERR_APPRAISAL,
				 "release manifest: the report's measurement %s is not one %s "
				 "lists (%s)", hex, manifest,
				 nw ? (sim ? "snp.sim_launch_measurement"
					   : "snp.launch_measurement")
				    : (sim ? "it has no snp.sim_launch_measurement"
					   : "it has no snp.launch_measurement"));
			json_decref(claims);
			goto fail;
		}
		json_object_set_new(claims, "release_manifest",
				    json_pack("{s:s,s:s}", "file", manifest, "measurement",
					      sim ? "sim_launch_measurement"
						  : "launch_measurement"));
	}
	char *s = sp_json_dump_pretty(claims);
	json_decref(claims);
	printf("%s\n", s);
	free(s);
	return 0;
fail:
	fprintf(stderr, "sealpod verify: REFUSED: %s: %s\n",
		sp_err_code_name(err ? err->code : SP_ERR_INVALID),
		sp_err_msg(err));
	return 1;
bad_arg:
	fprintf(stderr, "sealpod verify: %s\n", sp_err_msg(err));
	return 2;
too_many:
	fprintf(stderr, "sealpod verify: too many certificate files\n");
	return 2;
}

int cmd_report(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[1], "show") != 0) {
		fprintf(stderr, "usage: sealpod report show REPORT\n");
		return 2;
	}
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_free_ uint8_t *raw = NULL;
	size_t len = 0;
	sp_snp_report r;
	if (load_report(argv[2], &raw, &len, &err) < 0 ||
	    sp_snp_report_parse(&r, raw, len, &err) < 0) {
		fprintf(stderr, "sealpod report: %s\n", sp_err_msg(err));
		return 1;
	}
	json_t *j = sp_snp_report_to_json(&r, SP_SNP_CPU_UNKNOWN);
	_cleanup_free_ char *s = sp_json_dump_pretty(j);
	json_decref(j);
	printf("%s\n", s);
	return 0;
}
