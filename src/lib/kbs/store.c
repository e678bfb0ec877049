/* SPDX-License-Identifier: Apache-2.0 */
/* The broker's store (SQLite): resources, per-resource policies and RCAR
 * sessions. Host only: nothing on the client path reaches this file, so
 * the agent never links libsqlite (tests/integration/test_agent_tcb.py). */
#include <string.h>

#include <openssl/rand.h>
#include <sqlite3.h>

#include "kbs-internal.h"
#include "sealpod/codec.h"
#include "sealpod/json.h"

struct sp_kbs_store {
	sqlite3 *db;
};

static const char SCHEMA[] =
	"PRAGMA journal_mode=WAL;"
	"CREATE TABLE IF NOT EXISTS resources(path TEXT PRIMARY KEY, data BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS policies(path TEXT PRIMARY KEY, rule TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS manifests(id TEXT PRIMARY KEY, key_id TEXT NOT NULL,"
	" manifest BLOB NOT NULL, sig BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS sessions(id TEXT PRIMARY KEY, tee TEXT NOT NULL,"
	" nonce TEXT NOT NULL, expires INTEGER NOT NULL, claims TEXT);";

static int db_err(sp_kbs_store *s, sp_err **err, const char *what)
{
	return sp_error(err, SP_ERR_SYSTEM, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

int sp_kbs_store_open(sp_kbs_store **out, const char *path, sp_err **err)
{
	sp_kbs_store *s = sp_xzalloc(sizeof(*s));
	if (sqlite3_open_v2(path, &s->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		int r = sp_error(err, SP_ERR_SYSTEM, "store %s: %s", path,
				 s->db ? sqlite3_errmsg(s->db) : "cannot open");
		sp_kbs_store_close(s);
		return r;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if (sqlite3_exec(s->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
		int r = sp_error(err, SP_ERR_SYSTEM, "store %s: schema: %s", path,
				 sqlite3_errmsg(s->db));
		sp_kbs_store_close(s);
		return r;
	}
	*out = s;
	return 0;
}

void sp_kbs_store_close(sp_kbs_store *s)
{
	if (!s)
		return;
	sqlite3_close(s->db);
	free(s);
}

static sqlite3_stmt *prep(sp_kbs_store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return NULL;
	return st;
}

static void finalizep(sqlite3_stmt **st)
{
	sqlite3_finalize(*st);
}
#define _cleanup_stmt_ __attribute__((cleanup(finalizep)))

int sp_kbs_store_put_resource(sp_kbs_store *s, const char *path, const uint8_t *data,
			      size_t len, sp_err **err)
{
	_cleanup_stmt_ sqlite3_stmt *st =
		prep(s, "INSERT OR REPLACE INTO resources(path, data) VALUES(?, ?)");
	if (!st || sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT) ||
	    sqlite3_bind_blob64(st, 2, len ? (const void *)data : "", len, SQLITE_TRANSIENT) ||
	    sqlite3_step(st) != SQLITE_DONE)
		return db_err(s, err, "store resource");
	return 0;
}

int sp_kbs_store_get_resource(sp_kbs_store *s, const char *path, uint8_t **data,
			      size_t *len, sp_err **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = prep(s, "SELECT data FROM resources WHERE path = ?");
	if (!st || sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT))
		return db_err(s, err, "read resource");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return sp_error(err, SP_ERR_NOT_FOUND, "resource %s does not exist", path);
	if (rc != SQLITE_ROW)
		return db_err(s, err, "read resource");
	size_t n = (size_t)sqlite3_column_bytes(st, 0);
	const void *b = sqlite3_column_blob(st, 0);
	*data = sp_xmalloc(n + 1);
	if (n)
		memcpy(*data, b, n);
	(*data)[n] = 0;
	*len = n;
	return 0;
}

int sp_kbs_store_put_policy(sp_kbs_store *s, const char *path, const json_t *rule,
			    sp_err **err)
{
	_cleanup_free_ char *txt = sp_json_dump_canonical(rule);
	_cleanup_stmt_ sqlite3_stmt *st =
		prep(s, "INSERT OR REPLACE INTO policies(path, rule) VALUES(?, ?)");
	if (!st || sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT) ||
	    sqlite3_bind_text(st, 2, txt, -1, SQLITE_TRANSIENT) || sqlite3_step(st) != SQLITE_DONE)
		return db_err(s, err, "store policy");
	return 0;
}

int sp_kbs_store_get_policy(sp_kbs_store *s, const char *path, json_t **rule, sp_err **err)
{
	*rule = NULL;
	_cleanup_stmt_ sqlite3_stmt *st = prep(s, "SELECT rule FROM policies WHERE path = ?");
	if (!st || sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT))
		return db_err(s, err, "read policy");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return db_err(s, err, "read policy");
	const char *t = (const char *)sqlite3_column_text(st, 0);
	return sp_json_parse(rule, t, strlen(t), "stored policy", err);
}

int sp_kbs_store_delete_policy(sp_kbs_store *s, const char *path, sp_err **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = prep(s, "DELETE FROM policies WHERE path = ?");
	if (!st || sqlite3_bind_text(st, 1, path, -1, SQLITE_TRANSIENT) ||
	    sqlite3_step(st) != SQLITE_DONE)
		return db_err(s, err, "delete policy");
	if (sqlite3_changes(s->db) == 0)
		return sp_error(err, SP_ERR_NOT_FOUND, "resource %s has no policy", path);
	return 0;
}

int sp_kbs_store_put_manifest(sp_kbs_store *s, const char *id, const char *key_id,
			      const uint8_t *manifest, size_t mlen, const uint8_t *sig,
			      size_t slen, sp_err **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = prep(
		s, "INSERT OR REPLACE INTO manifests(id, key_id, manifest, sig) VALUES(?, ?, ?, ?)");
	if (!st || sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) ||
	    sqlite3_bind_text(st, 2, key_id, -1, SQLITE_TRANSIENT) ||
	    sqlite3_bind_blob(st, 3, manifest, (int)mlen, SQLITE_TRANSIENT) ||
	    sqlite3_bind_blob(st, 4, sig, (int)slen, SQLITE_TRANSIENT) ||
	    sqlite3_step(st) != SQLITE_DONE)
		return db_err(s, err, "store manifest");
	return 0;
}

int sp_kbs_store_each_manifest(sp_kbs_store *s, const char *key_id, sp_kbs_manifest_fn fn,
			       void *ctx, sp_err **err)
{
	_cleanup_stmt_ sqlite3_stmt *st =
		prep(s, "SELECT manifest, sig FROM manifests WHERE key_id = ? ORDER BY id");
	if (!st || sqlite3_bind_text(st, 1, key_id, -1, SQLITE_TRANSIENT))
		return db_err(s, err, "read manifests");
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const uint8_t *m = sqlite3_column_blob(st, 0);
		size_t ml = (size_t)sqlite3_column_bytes(st, 0);
		const uint8_t *g = sqlite3_column_blob(st, 1);
		size_t gl = (size_t)sqlite3_column_bytes(st, 1);
		fn(ctx, m ? m : (const uint8_t *)"", ml, g ? g : (const uint8_t *)"", gl);
	}
	if (rc != SQLITE_DONE)
		return db_err(s, err, "read manifests");
	return 0;
}

int sp_kbs_store_list_policies(sp_kbs_store *s, json_t **out, sp_err **err)
{
	*out = NULL;
	_cleanup_stmt_ sqlite3_stmt *st = prep(s, "SELECT path, rule FROM policies ORDER BY path");
	if (!st)
		return db_err(s, err, "list policies");
	json_t *a = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(st, 0);
		const char *t = (const char *)sqlite3_column_text(st, 1);
		json_t *rule = NULL;
		if (sp_json_parse(&rule, t, strlen(t), "stored policy", err) < 0) {
			json_decref(a);
			return (*err)->code;
		}
		json_array_append_new(a, json_pack("{s:s,s:o}", "path", path, "rule", rule));
	}
	if (rc != SQLITE_DONE) {
		json_decref(a);
		return db_err(s, err, "list policies");
	}
	*out = a;
	return 0;
}

void sp_kbs_session_clear(sp_kbs_session *s)
{
	if (s->claims)
		json_decref(s->claims);
	memset(s, 0, sizeof(*s));
}

int sp_kbs_session_new(sp_kbs_store *s, const char *tee, time_t now, int ttl,
		       sp_kbs_session *out, sp_err **err)
{
	uint8_t id[16], nonce[SP_KBS_NONCE_LEN];
	memset(out, 0, sizeof(*out));
	if (strlen(tee) >= sizeof(out->tee))
		return sp_error(err, SP_ERR_INVALID, "tee name too long");
	if (RAND_bytes(id, sizeof(id)) != 1 || RAND_bytes(nonce, sizeof(nonce)) != 1)
		return sp_error(err, SP_ERR_SYSTEM, "no randomness for a session");
	sp_hex_encode(out->id, id, sizeof(id));
	_cleanup_free_ char *n64 = sp_base64_encode(nonce, sizeof(nonce), SP_B64_STD);
	snprintf(out->nonce, sizeof(out->nonce), "%s", n64);
	snprintf(out->tee, sizeof(out->tee), "%s", tee);
	out->expires = now + ttl;
	_cleanup_stmt_ sqlite3_stmt *st =
		prep(s, "INSERT INTO sessions(id, tee, nonce, expires) VALUES(?, ?, ?, ?)");
	if (!st || sqlite3_bind_text(st, 1, out->id, -1, SQLITE_TRANSIENT) ||
	    sqlite3_bind_text(st, 2, out->tee, -1, SQLITE_TRANSIENT) ||
	    sqlite3_bind_text(st, 3, out->nonce, -1, SQLITE_TRANSIENT) ||
	    sqlite3_bind_int64(st, 4, (sqlite3_int64)out->expires) ||
	    sqlite3_step(st) != SQLITE_DONE)
		return db_err(s, err, "new session");
	return 0;
}

static int session_delete(sp_kbs_store *s, const char *id)
{
	_cleanup_stmt_ sqlite3_stmt *st = prep(s, "DELETE FROM sessions WHERE id = ?");
	if (!st || sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) ||
	    sqlite3_step(st) != SQLITE_DONE)
		return -1;
	return 0;
}

int sp_kbs_session_get(sp_kbs_store *s, const char *id, time_t now, sp_kbs_session *out,
		       sp_err **err)
{
	memset(out, 0, sizeof(*out));
	_cleanup_stmt_ sqlite3_stmt *st =
		prep(s, "SELECT tee, nonce, expires, claims FROM sessions WHERE id = ?");
	if (!st || sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT))
		return db_err(s, err, "read session");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return sp_error(err, SP_ERR_NOT_FOUND, "no such session");
	if (rc != SQLITE_ROW)
		return db_err(s, err, "read session");
	time_t exp = (time_t)sqlite3_column_int64(st, 2);
	if (now >= exp) {
		sqlite3_reset(st);
		session_delete(s, id);
		return sp_error(err, SP_ERR_NOT_FOUND, "the session expired");
	}
	snprintf(out->id, sizeof(out->id), "%s", id);
	snprintf(out->tee, sizeof(out->tee), "%s", (const char *)sqlite3_column_text(st, 0));
	snprintf(out->nonce, sizeof(out->nonce), "%s", (const char *)sqlite3_column_text(st, 1));
	out->expires = exp;
	const char *claims = (const char *)sqlite3_column_text(st, 3);
	if (claims) {
		int r = sp_json_parse(&out->claims, claims, strlen(claims), "session claims", err);
		if (r < 0)
			return r;
		out->attested = true;
	}
	return 0;
}

int sp_kbs_session_set_attested(sp_kbs_store *s, const char *id, const json_t *claims,
				sp_err **err)
{
	_cleanup_free_ char *txt = sp_json_dump_canonical(claims);
	_cleanup_stmt_ sqlite3_stmt *st = prep(s, "UPDATE sessions SET claims = ? WHERE id = ?");
	if (!st || sqlite3_bind_text(st, 1, txt, -1, SQLITE_TRANSIENT) ||
	    sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT) || sqlite3_step(st) != SQLITE_DONE)
		return db_err(s, err, "update session");
	if (sqlite3_changes(s->db) != 1)
		return sp_error(err, SP_ERR_NOT_FOUND, "no such session");
	return 0;
}

int sp_kbs_session_expire(sp_kbs_store *s, time_t now, sp_err **err)
{
	_cleanup_stmt_ sqlite3_stmt *st = prep(s, "DELETE FROM sessions WHERE expires <= ?");
	if (!st || sqlite3_bind_int64(st, 1, (sqlite3_int64)now) ||
	    sqlite3_step(st) != SQLITE_DONE)
		return db_err(s, err, "expire sessions");
	return sqlite3_changes(s->db);
}
