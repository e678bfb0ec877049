"""sealpod-kbs, the key broker: the real broker on 127.0.0.1 with a temporary
SQLite store, sim PSPs as the TEEs (one per HOST_DATA, i.e. per pod policy),
and `sealpod kbs get-resource` as the guest-side client doing the whole
RCAR handshake (auth, attest, resource as a JWE)."""
import hashlib
import http.client
import json
import os
import re
import time

SANITIZE = True

MEAS = "ab" * 48
TYPE = "https://github.com/confidential-containers/kbs/errors/"


def wait_socket(m, p, path, what):
    deadline = time.time() + 180
    while not os.path.exists(path):
        if p.poll() is not None:
            raise AssertionError("%s exited %s" % (what, p.returncode))
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def start_kbs(m, name, extra):
    out = open(m.path(name + ".out"), "w+")
    err = open(m.path(name + ".err"), "w")
    p = m.spawn([m.prog("sealpod-kbs"), "--db", m.path(name + ".db"),
                 "--listen", "127.0.0.1:0", "--admin-token-file", m.admin_file,
                 "--log-level", "debug"] + extra, stdout=out, stderr=err)
    deadline = time.time() + 30
    while True:
        out.seek(0)
        mm = re.search(r"listening on (http://[0-9.]+:(\d+))", out.read())
        if mm:
            return mm.group(1), int(mm.group(2))
        if p.poll() is not None or time.time() > deadline:
            with open(m.path(name + ".err")) as f:
                raise AssertionError("sealpod-kbs did not start: " + f.read())
        time.sleep(0.05)


def setup_module(m):
    s = m.prog("sealpod")
    m.state = m.path("sim-state")
    m.policy_a = b"pod policy A"
    m.policy_b = b"pod policy B"
    m.hd_a = hashlib.sha256(m.policy_a).hexdigest()
    m.hd_b = hashlib.sha256(m.policy_b).hexdigest()
    # Generate the sim keys once (RSA-4096 is slow), then two TEEs.
    m.run([s, "sim-psp", "--state", m.state, "--measurement", MEAS,
           "--out", m.path("warm.bin")], check=True, timeout=300)
    m.psp = {}
    for name, hd in (("a", m.hd_a), ("b", m.hd_b)):
        sock = m.path("psp-%s.sock" % name)
        p = m.spawn([s, "sim-psp", "--listen", "unix:" + sock, "--state", m.state,
                     "--host-data", hd, "--measurement", MEAS])
        wait_socket(m, p, sock, "sim-psp " + name)
        m.psp[name] = sock
    m.admin_token = "t0ps3cret-admin-token-for-tests"
    m.admin_file = m.path("admin.token")
    with open(m.admin_file, "w") as f:
        f.write(m.admin_token + "\n")
    m.url, m.port = start_kbs(m, "kbs", ["--allow-sim", "--sim-root",
                                         os.path.join(m.state, "ark.pem"),
                                         "--allow-measurement", MEAS])
    # A second broker that does not accept the sim TEE.
    m.url_nosim, m.port_nosim = start_kbs(m, "kbs-nosim", [])
    # The resource bound to pod policy A.
    admin(m.port, "POST", "/kbs/v0/resource/default/key/k1", b"the pod's key\x00\x01",
          m.admin_token, expect=200)
    admin(m.port, "POST", "/kbs/v0/resource-policy",
          json.dumps({"path": "default/key/k1", "rule": {"host_data": [m.hd_a]}}).encode(),
          m.admin_token, expect=200)


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, dict(r.getheaders()), data
    finally:
        c.close()


def admin(port, method, path, body, token, expect):
    h = {"Authorization": "Bearer " + token} if token else {}
    status, _, data = request(port, method, path, body, h)
    if status != expect:
        raise AssertionError("%s %s: HTTP %d, want %d: %s" % (method, path, status, expect,
                                                           data))
    return data


def get(t, tee, path="default/key/k1", url=None, extra=()):
    return t.run([t.prog("sealpod"), "kbs", "get-resource", "--url", url or t.module.url,
                  "--tee", "sim:" + t.module.psp[tee], "--out", t.path("out.bin")]
                 + list(extra) + [path])


def problem(t, data, want_type):
    j = json.loads(data)
    t.eq(sorted(j), ["detail", "type"], "error body members")
    t.eq(j["type"], TYPE + want_type, "error type")
    return j["detail"]


def test_resource_released_to_the_allowed_pod(t):
    r = get(t, "a")
    t.eq(r.returncode, 0, "get-resource exit code: " + r.stderr)
    with open(t.path("out.bin"), "rb") as f:
        t.eq(f.read(), b"the pod's key\x00\x01", "decrypted resource")


def test_other_host_data_refused_403(t):
    r = get(t, "b")
    t.eq(r.returncode, 1, "get-resource exit code")
    t.check("HTTP 403 PolicyDeny" in r.stderr and t.module.hd_b in r.stderr
            and "HOST_DATA" in r.stderr, "403 naming the HOST_DATA", r.stderr)
    t.check(not os.path.exists(t.path("out.bin")), "nothing written")


def test_resource_without_policy_denied(t):
    admin(t.module.port, "POST", "/kbs/v0/resource/default/key/nopolicy", b"x",
          t.module.admin_token, expect=200)
    r = get(t, "a", "default/key/nopolicy")
    t.check(r.returncode == 1 and "403" in r.stderr and "no policy" in r.stderr,
            "deny by default", r.stderr)


def test_missing_resource_404(t):
    admin(t.module.port, "POST", "/kbs/v0/resource-policy",
          json.dumps({"path": "default/key/absent",
                      "rule": {"host_data": [t.module.hd_a]}}).encode(),
          t.module.admin_token, expect=200)
    r = get(t, "a", "default/key/absent")
    t.check(r.returncode == 1 and "HTTP 404 ResourceNotFound" in r.stderr, "404", r.stderr)


def test_resource_without_attestation_401(t):
    port = t.module.port
    status, _, data = request(port, "GET", "/kbs/v0/resource/default/key/k1")
    t.eq(status, 401, "no cookie")
    problem(t, data, "UnAuthenticatedCookie")
    # A session that did auth but never attested.
    status, h, data = request(port, "POST", "/kbs/v0/auth", json.dumps(
        {"version": "0.4.0", "tee": "sim", "extra-params": {}}).encode())
    t.eq(status, 200, "auth")
    t.check(len(json.loads(data)["nonce"]) >= 40, "a base64 nonce", data)
    cookie = h["Set-Cookie"].split(";")[0]
    t.check(cookie.startswith("kbs-session-id="), "session cookie", cookie)
    status, _, data = request(port, "GET", "/kbs/v0/resource/default/key/k1",
                              headers={"Cookie": cookie})
    t.eq(status, 401, "unattested session")
    t.check("not attested" in problem(t, data, "UnAuthenticatedCookie"), "detail", data)
    # A forged bearer token.
    status, _, data = request(port, "GET", "/kbs/v0/resource/default/key/k1",
                              headers={"Authorization": "Bearer a.b.c"})
    t.eq(status, 401, "bad bearer token")


def test_wrong_nonce_refused(t):
    r = get(t, "a", extra=["--nonce", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="])
    t.check(r.returncode == 1 and "attest: HTTP 401" in r.stderr and "nonce" in r.stderr,
            "wrong nonce refused", r.stderr)


def test_protocol_version_must_be_0_4_0(t):
    r = get(t, "a", extra=["--protocol", "0.3.0"])
    t.check(r.returncode == 1 and "HTTP 401 ProtocolVersion" in r.stderr, "0.3.0", r.stderr)
    for v in ("0.4.1", "0.4", ""):
        status, _, data = request(t.module.port, "POST", "/kbs/v0/auth", json.dumps(
            {"version": v, "tee": "sim", "extra-params": {}}).encode())
        t.eq(status, 401, "version %r" % v)
        problem(t, data, "ProtocolVersion")


def test_sim_refused_without_allow_sim(t):
    r = get(t, "a", url=t.module.url_nosim)
    t.check(r.returncode == 1 and "auth: HTTP" in r.stderr and "--allow-sim" in r.stderr,
            "tee sim refused", r.stderr)
    # A sim report presented as snp: the chain does not reach an AMD root.
    r = get(t, "a", url=t.module.url_nosim, extra=["--kbs-tee", "snp"])
    t.check(r.returncode == 1 and "HTTP 401 AttestationFailed" in r.stderr
            and "certificate chain" in r.stderr, "sim report as snp refused", r.stderr)
    # And on the sim-accepting broker too: a session as snp gets no sim trust.
    r = get(t, "a", extra=["--kbs-tee", "snp"])
    t.check(r.returncode == 1 and "AttestationFailed" in r.stderr, "snp session", r.stderr)


def test_malformed_attest_400_without_internals(t):
    port = t.module.port
    _, h, _ = request(port, "POST", "/kbs/v0/auth", json.dumps(
        {"version": "0.4.0", "tee": "sim", "extra-params": {}}).encode())
    cookie = {"Cookie": h["Set-Cookie"].split(";")[0]}
    status, _, data = request(port, "POST", "/kbs/v0/attest", b"{not json", cookie)
    t.eq(status, 400, "bad JSON")
    problem(t, data, "InvalidRequest")
    body = {"runtime-data": {"nonce": "x", "tee-pubkey": {"kty": "EC", "crv": "P-256",
                                                          "x": "AA", "y": "AA"}},
            "tee-evidence": {"primary_evidence": {"attestation_report": "AAAA"}}}
    status, _, data = request(port, "POST", "/kbs/v0/attest", json.dumps(body).encode(),
                              cookie)
    t.eq(status, 400, "short report")
    t.check("attestation_report" in problem(t, data, "InvalidRequest"), "names field", data)


def test_admin_requires_token(t):
    port = t.module.port
    for tok in (None, "wrong-token-wrong-token"):
        admin(port, "POST", "/kbs/v0/resource/default/key/k1", b"replaced", tok, expect=401)
        admin(port, "POST", "/kbs/v0/resource-policy", json.dumps(
            {"path": "default/key/k1", "rule": {"host_data": [t.module.hd_b]}}).encode(),
            tok, expect=401)
    # Nothing changed: pod A still gets the original bytes, pod B still not.
    r = get(t, "a")
    t.eq(r.returncode, 0, "still released: " + r.stderr)
    with open(t.path("out.bin"), "rb") as f:
        t.eq(f.read(), b"the pod's key\x00\x01", "resource unchanged")
    # A policy that matches everyone is refused.
    admin(port, "POST", "/kbs/v0/resource-policy",
          json.dumps({"path": "default/key/k1", "rule": {}}).encode(),
          t.module.admin_token, expect=400)


def test_bad_flags(t):
    k = t.prog("sealpod-kbs")
    r = t.run([k, "--listen", "127.0.0.1:0"])
    t.check(r.returncode == 2 and "--db" in r.stderr, "--db required", r.stderr)
    r = t.run([k, "--db", t.path("x.db"), "--listen", "localhost"])
    t.check(r.returncode == 2 and "--listen" in r.stderr, "bad --listen", r.stderr)
    r = t.run([k, "--db", t.path("x.db"), "--sim-root", "/nonexistent"])
    t.check(r.returncode == 2 and "--allow-sim" in r.stderr, "--sim-root alone", r.stderr)
    r = t.run([k, "--db", t.path("x.db"), "--listen", "127.0.0.1:%d" % t.module.port])
    t.check(r.returncode == 1 and "cannot listen" in r.stderr, "port in use", r.stderr)
