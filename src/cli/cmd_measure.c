/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod measure: the SEV-SNP launch digest, with sev-snp-measure's
 * flags. */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "sealpod/codec.h"
#include "sealpod/snp.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealpod measure --mode snp --ovmf FILE --vcpus N "
		"--vcpu-type TYPE\n"
		"         [--vmm-type QEMU|ec2|gce] [--kernel K [--initrd I] "
		"[--append A]]\n"
		"         [--guest-features HEX] [--output-format hex] "
		"[--sim-direct-boot]\n");
}

int cmd_measure(int argc, char **argv)
{
	static const struct option opts[] = {
		{"mode", required_argument, NULL, 'm'},
		{"ovmf", required_argument, NULL, 'o'},
		{"vcpus", required_argument, NULL, 'n'},
		{"vcpu-type", required_argument, NULL, 't'},
		{"vcpu-sig", required_argument, NULL, 'S'},
		{"vmm-type", required_argument, NULL, 'v'},
		{"kernel", required_argument, NULL, 'k'},
		{"initrd", required_argument, NULL, 'i'},
		{"append", required_argument, NULL, 'a'},
		{"guest-features", required_argument, NULL, 'g'},
		{"output-format", required_argument, NULL, 'f'},
		{"sim-direct-boot", no_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	sp_snp_measure_opts o;
	sp_snp_measure_opts_init(&o);
	o.vcpus = 0;
	int c;
	char *end;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (strcmp(optarg, "snp") != 0) {
				fprintf(stderr, "sealpod measure: mode `%s` is "
					"not supported; only `snp` is\n", optarg);
				return 2;
			}
			break;
		case 'o': o.ovmf = optarg; break;
		case 'n': {
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || *end || v < 1 || v > 4096) {
				fprintf(stderr, "sealpod measure: --vcpus `%s`: "
					"want a number from 1 to 4096\n", optarg);
				return 2;
			}
			o.vcpus = (unsigned)v;
			break;
		}
		case 't': o.vcpu_type = optarg; break;
		case 'S':
			errno = 0;
			o.vcpu_sig = (uint32_t)strtoul(optarg, &end, 0);
			if (errno || *end) {
				fprintf(stderr, "sealpod measure: --vcpu-sig `%s` "
					"is not a number\n", optarg);
				return 2;
			}
			break;
		case 'v':
			o.vmm = sp_snp_vmm_parse(optarg);
			if (o.vmm < 0) {
				fprintf(stderr, "sealpod measure: --vmm-type `%s`: "
					"want QEMU, ec2 or gce\n", optarg);
				return 2;
			}
			break;
		case 'k': o.kernel = optarg; break;
		case 'i': o.initrd = optarg; break;
		case 'a': o.append = optarg; break;
		case 'g':
			errno = 0;
			o.guest_features = strtoull(optarg, &end, 16);
			if (errno || *end || end == optarg) {
				fprintf(stderr, "sealpod measure: "
					"--guest-features `%s` is not hex\n",
					optarg);
				return 2;
			}
			break;
		case 'f':
			if (strcmp(optarg, "hex") != 0) {
				fprintf(stderr, "sealpod measure: output format "
					"`%s` is not supported; use hex\n", optarg);
				return 2;
			}
			break;
		case 'D': o.sim_direct_boot = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !o.ovmf || !o.vcpus) {
		fprintf(stderr, "sealpod measure: --ovmf and --vcpus are "
			"required\n");
		usage(stderr);
		return 2;
	}
	uint8_t digest[SP_SNP_MEASUREMENT_LEN];
	_cleanup_err_ sp_err *err = NULL;
	if (sp_snp_measure(digest, &o, &err) < 0) {
		fprintf(stderr, "sealpod measure: %s\n", sp_err_msg(err));
		return 1;
	}
	char hex[2 * SP_SNP_MEASUREMENT_LEN + 1];
	sp_hex_encode(hex, digest, sizeof(digest));
	printf("%s\n", hex);
	return 0;
}
