/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod-kbs: the key broker. Flags, the store, the token key and the
 * libmicrohttpd daemon; the API is in server.c (docs/kbs.md). */
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <string.h>

#include "server.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/log.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealpod-kbs --db PATH [--listen IP:PORT] [--admin-token-file F]\n"
		"           [--cert PEM --key PEM] [--token-key PEM]\n"
		"           [--allow-sim [--sim-root PEM]] [--kds-cache DIR [--offline]]\n"
		"           [--allow-measurement HEX]... [--allow-host-data HEX]...\n"
		"           [--min-tcb bl=,tee=,snp=,ucode=] [--session-ttl S] "
		"[--log-level L]\n"
		"Speaks the Trustee KBS protocol " SP_KBS_PROTOCOL_VERSION
		" under /kbs/v0 (docs/kbs.md). Default --listen 127.0.0.1:8080;\n"
		"port 0 picks a free port. Prints `sealpod-kbs: listening on URL` when ready.\n");
}

static int die(const char *what, sp_err *err)
{
	fprintf(stderr, "sealpod-kbs: %s: %s\n", what, sp_err_msg(err));
	sp_err_free(err);
	return 1;
}

static int add_hex(uint8_t **arr, size_t *n, size_t len, const char *hex, const char *flag)
{
	_cleanup_err_ sp_err *err = NULL;
	*arr = sp_xrealloc(*arr, (*n + 1) * len);
	if (sp_hex_decode(*arr + *n * len, len, hex, &err) < 0) {
		fprintf(stderr, "sealpod-kbs: %s `%s`: want %zu hex digits\n", flag, hex, 2 * len);
		return -1;
	}
	(*n)++;
	return 0;
}

static char *read_text(const char *path, const char *flag, size_t *len_out)
{
	_cleanup_err_ sp_err *err = NULL;
	uint8_t *d = NULL;
	size_t n = 0;
	if (sp_read_file(&d, &n, path, 1 << 20, &err) < 0) {
		fprintf(stderr, "sealpod-kbs: %s: %s\n", flag, sp_err_msg(err));
		return NULL;
	}
	if (len_out)
		*len_out = n;
	return (char *)d;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"db", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"admin-token-file", required_argument, NULL, 'a'},
		{"cert", required_argument, NULL, 'c'},
		{"key", required_argument, NULL, 'k'},
		{"token-key", required_argument, NULL, 't'},
		{"allow-sim", no_argument, NULL, 'S'},
		{"sim-root", required_argument, NULL, 'R'},
		{"kds-cache", required_argument, NULL, 'K'},
		{"offline", no_argument, NULL, 'O'},
		{"allow-measurement", required_argument, NULL, 'm'},
		{"allow-host-data", required_argument, NULL, 'H'},
		{"min-tcb", required_argument, NULL, 'T'},
		{"session-ttl", required_argument, NULL, 's'},
		{"log-level", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct kbs_config cfg = {.session_ttl = SP_KBS_SESSION_TTL};
	const char *db = NULL, *listen_on = "127.0.0.1:8080", *cert = NULL, *key = NULL,
		   *token_key = NULL, *sim_root = NULL, *admin_file = NULL;
	int level = SP_LOG_INFO, c;
	sp_err *err = NULL;
	sp_log_init("sealpod-kbs", level);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'l': listen_on = optarg; break;
		case 'a': admin_file = optarg; break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 't': token_key = optarg; break;
		case 'S': cfg.allow_sim = true; break;
		case 'R': sim_root = optarg; break;
		case 'K': cfg.kds_cache = optarg; break;
		case 'O': cfg.kds_offline = true; break;
		case 'm':
			if (add_hex((uint8_t **)&cfg.measurements, &cfg.n_measurements,
				    SP_SNP_MEASUREMENT_LEN, optarg, "--allow-measurement") < 0)
				return 2;
			break;
		case 'H':
			if (add_hex((uint8_t **)&cfg.host_data, &cfg.n_host_data,
				    SP_SNP_HOST_DATA_LEN, optarg, "--allow-host-data") < 0)
				return 2;
			break;
		case 'T':
			if (sp_snp_tcb_parse(&cfg.min_tcb, optarg, &err) < 0)
				return die("--min-tcb", err);
			cfg.check_min_tcb = true;
			break;
		case 's':
			cfg.session_ttl = atoi(optarg);
			if (cfg.session_ttl < 1 || cfg.session_ttl > 86400) {
				fprintf(stderr, "sealpod-kbs: --session-ttl: 1..86400 seconds\n");
				return 2;
			}
			break;
		case 'L':
			if ((level = sp_log_level_parse(optarg)) < 0) {
				fprintf(stderr, "sealpod-kbs: --log-level: error|warn|info|debug\n");
				return 2;
			}
			sp_log_set_level(level);
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !db) {
		if (!db)
			fprintf(stderr, "sealpod-kbs: --db PATH is required (the SQLite store)\n");
		usage(stderr);
		return 2;
	}
	if ((cert != NULL) != (key != NULL)) {
		fprintf(stderr, "sealpod-kbs: --cert and --key go together (TLS)\n");
		return 2;
	}
	if (sim_root && !cfg.allow_sim) {
		fprintf(stderr, "sealpod-kbs: --sim-root needs --allow-sim\n");
		return 2;
	}
	/* Listening address: IPv4 IP:PORT. */
	struct sockaddr_in sin = {.sin_family = AF_INET};
	const char *colon = strrchr(listen_on, ':');
	char ip[64];
	char *end = NULL;
	long port = colon ? strtol(colon + 1, &end, 10) : -1;
	if (!colon || (size_t)(colon - listen_on) >= sizeof(ip) || !end || *end || port < 0 ||
	    port > 65535) {
		fprintf(stderr, "sealpod-kbs: --listen `%s`: want IPv4:PORT\n", listen_on);
		return 2;
	}
	snprintf(ip, sizeof(ip), "%.*s", (int)(colon - listen_on), listen_on);
	if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1) {
		fprintf(stderr, "sealpod-kbs: --listen `%s`: want IPv4:PORT\n", listen_on);
		return 2;
	}
	sin.sin_port = htons((uint16_t)port);

	if (admin_file) {
		char *t = read_text(admin_file, "--admin-token-file", NULL);
		if (!t)
			return 1;
		t[strcspn(t, "\r\n")] = 0;
		if (strlen(t) < 16) {
			fprintf(stderr, "sealpod-kbs: --admin-token-file: the token must have at "
					"least 16 characters\n");
			free(t);
			return 1;
		}
		cfg.admin_token = t;
	}
	if (cfg.allow_sim) {
		_cleanup_free_ char *def = sp_xasprintf("%s/ark.pem", sp_simpsp_default_state());
		const char *root = sim_root ? sim_root : def;
		char *pem = read_text(root, "--sim-root", &cfg.sim_root_len);
		if (!pem)
			return 1;
		cfg.sim_root = (uint8_t *)pem;
		sp_snp_verifier *v = sp_snp_verifier_new();
		int r = sp_snp_verifier_trust_sim_root(v, cfg.sim_root, cfg.sim_root_len, &err);
		sp_snp_verifier_free(v);
		if (r < 0)
			return die("--sim-root", err);
		sp_log_warn("--allow-sim: sim TEE reports are accepted (tests and development "
			    "only; the sim is not a security boundary)");
	}
	if (token_key) {
		size_t n = 0;
		_cleanup_free_ char *pem = read_text(token_key, "--token-key", &n);
		if (!pem)
			return 1;
		if (sp_kbs_key_from_pem(&cfg.token_key, (uint8_t *)pem, n, &err) < 0)
			return die("--token-key", err);
	} else if (sp_kbs_key_generate_ec(&cfg.token_key, &err) < 0) {
		return die("token key", err);
	}
	if (sp_kbs_store_open(&cfg.store, db, &err) < 0)
		return die("--db", err);

	_cleanup_free_ char *tls_cert = NULL, *tls_key = NULL;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (cert) {
		if (!(tls_cert = read_text(cert, "--cert", NULL)) ||
		    !(tls_key = read_text(key, "--key", NULL)))
			return 1;
		flags |= MHD_USE_TLS;
	}
	/* Signals are taken by sigwait below; the daemon's thread inherits
	 * the blocked mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct MHD_Daemon *d;
	if (cert)
		d = MHD_start_daemon(flags, 0, NULL, NULL, kbs_handle, &cfg,
				     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
				     MHD_OPTION_NOTIFY_COMPLETED, kbs_completed, &cfg,
				     MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				     MHD_OPTION_HTTPS_MEM_CERT, tls_cert,
				     MHD_OPTION_HTTPS_MEM_KEY, tls_key, MHD_OPTION_END);
	else
		d = MHD_start_daemon(flags, 0, NULL, NULL, kbs_handle, &cfg,
				     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
				     MHD_OPTION_NOTIFY_COMPLETED, kbs_completed, &cfg,
				     MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "sealpod-kbs: cannot listen on %s%s (address in use, or a bad "
				"certificate/key)\n", listen_on, cert ? " with TLS" : "");
		sp_kbs_store_close(cfg.store);
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("sealpod-kbs: listening on %s://%s:%u\n", cert ? "https" : "http", ip,
	       info ? info->port : (unsigned)port);
	fflush(stdout);
	int sig = 0;
	sigwait(&set, &sig);
	sp_log_info("signal %d: stopping", sig);
	MHD_stop_daemon(d);
	sp_kbs_store_close(cfg.store);
	sp_kbs_key_free(cfg.token_key);
	free(cfg.admin_token);
	free(cfg.sim_root);
	free(cfg.measurements);
	free(cfg.host_data);
	return 0;
}
