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
        mm = re.search(r"listening on (https?://[0-9.]+:(\d+))", out.read())
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


# ---- guest-components' evidence form: the sev crate's report object ----

TCB_FIELDS = (0x038, 0x180, 0x1E0, 0x1F0)


def sev_report_object(rep):
    """The 1184 report bytes in the serde layout of the virtee `sev` crate
    (6.x/7.x) that guest-components' SNP attester sends. Written here from
    the SNP ABI offsets, independently of the broker's C code."""
    import struct
    u32 = lambda o: struct.unpack_from("<I", rep, o)[0]
    u64 = lambda o: struct.unpack_from("<Q", rep, o)[0]
    arr = lambda o, n: list(rep[o:o + n])
    version = u32(0)

    def tcb(o):  # Milan/Genoa layout (the sim is a Milan)
        b = rep[o:o + 8]
        return {"fmc": None, "bootloader": b[0], "tee": b[1], "snp": b[6],
                "microcode": b[7]}
    v3, v5 = version >= 3, version >= 5
    return {
        "version": version, "guest_svn": u32(4), "policy": u64(8),
        "family_id": arr(0x10, 16), "image_id": arr(0x20, 16), "vmpl": u32(0x30),
        "sig_algo": u32(0x34), "current_tcb": tcb(0x38), "plat_info": u64(0x40),
        "key_info": u32(0x48), "report_data": arr(0x50, 64),
        "measurement": arr(0x90, 48), "host_data": arr(0xC0, 32),
        "id_key_digest": arr(0xE0, 48), "author_key_digest": arr(0x110, 48),
        "report_id": arr(0x140, 32), "report_id_ma": arr(0x160, 32),
        "reported_tcb": tcb(0x180),
        "cpuid_fam_id": rep[0x188] if v3 else None,
        "cpuid_mod_id": rep[0x189] if v3 else None,
        "cpuid_step": rep[0x18A] if v3 else None,
        "chip_id": arr(0x1A0, 64), "committed_tcb": tcb(0x1E0),
        "current": {"major": rep[0x1EA], "minor": rep[0x1E9], "build": rep[0x1E8]},
        "committed": {"major": rep[0x1EE], "minor": rep[0x1ED], "build": rep[0x1EC]},
        "launch_tcb": tcb(0x1F0),
        "launch_mit_vector": u64(0x1F8) if v5 else None,
        "current_mit_vector": u64(0x200) if v5 else None,
        "signature": {"r": arr(0x2A0, 72), "s": arr(0x2A0 + 72, 72)},
    }


def sev_cert_chain(table):
    """A GHCB certificate table as the sev crate's Vec<CertTableEntry>."""
    import struct
    import uuid
    names = {"63da758d-e664-4564-adc5-f4b93be8accd": "VCEK",
             "4ab7b379-bbac-4fe4-a02f-05aef327c782": "ASK",
             "c0b406a4-a803-4952-9743-3fb6014cd0ae": "ARK"}
    out, off = [], 0
    while True:
        g = table[off:off + 16]
        o, n = struct.unpack_from("<II", table, off + 16)
        if g == bytes(16):
            return out
        kind = names.get(str(uuid.UUID(bytes_le=g)), None)
        out.append({"cert_type": kind or {"OTHER": str(uuid.UUID(bytes_le=g))},
                    "data": list(table[o:o + n])})
        off += 24


def ec_jwk(t):
    """A fresh EC P-256 public JWK (the openssl CLI makes the key)."""
    import base64
    key = t.path("ec.pem")
    t.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
           "ec_paramgen_curve:P-256", "-out", key], check=True)
    der = t.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                check=True, text=False).stdout
    pt = der[-65:]
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    return {"kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A256KW", "x": b64(pt[1:33]),
            "y": b64(pt[33:])}


def sev_attest(t, host_data, tamper=False):
    """RCAR by hand with the evidence in guest-components' form; returns the
    cookie and the attest answer."""
    m = t.module
    status, h, data = request(m.port, "POST", "/kbs/v0/auth", json.dumps(
        {"version": "0.4.0", "tee": "sim", "extra-params": {}}).encode())
    t.eq(status, 200, "auth")
    cookie = {"Cookie": h["Set-Cookie"].split(";")[0]}
    nonce = json.loads(data)["nonce"]
    jwk = ec_jwk(t)
    # JCS of these ASCII-only members is sorted keys without spaces.
    rd = hashlib.sha384(json.dumps({"nonce": nonce, "tee-pubkey": jwk}, sort_keys=True,
                                   separators=(",", ":")).encode()).hexdigest()
    t.run([t.prog("sealpod"), "sim-psp", "--state", m.state, "--measurement", MEAS,
           "--host-data", host_data, "--report-data", rd.ljust(128, "0"),
           "--out", t.path("rep.bin"), "--certs", t.path("certs.bin")], check=True)
    with open(t.path("rep.bin"), "rb") as f:
        rep = f.read()
    with open(t.path("certs.bin"), "rb") as f:
        certs = f.read()
    obj = sev_report_object(rep)
    if tamper:
        obj["guest_svn"] ^= 1
    evidence = {"attestation_report": obj, "cert_chain": sev_cert_chain(certs)}
    t.eq(sorted(e["cert_type"] for e in evidence["cert_chain"]), ["ARK", "ASK", "VCEK"],
         "the sim's certificate table")
    body = {"runtime-data": {"nonce": nonce, "tee-pubkey": jwk},
            "tee-evidence": {"primary_evidence": evidence,
                             "additional_evidence": ""}}
    status, _, data = request(m.port, "POST", "/kbs/v0/attest", json.dumps(body).encode(),
                              cookie)
    return cookie, status, data


def test_sev_object_evidence_by_hand(t):
    cookie, status, data = sev_attest(t, t.module.hd_a)
    t.eq(status, 200, "attest with the sev object form: %s" % data)
    token = json.loads(data)["token"]
    status, _, data = request(t.module.port, "GET", "/kbs/v0/resource/default/key/k1",
                              headers=cookie)
    t.eq(status, 200, "resource with the cookie: %s" % data)
    t.eq(sorted(json.loads(data)), ["ciphertext", "encrypted_key", "iv", "protected", "tag"],
         "a JWE")
    status, _, data = request(t.module.port, "GET", "/kbs/v0/resource/default/key/k1",
                              headers={"Authorization": "Bearer " + token})
    t.eq(status, 200, "resource with the bearer token: %s" % data)
    # Another pod policy: attested, but the resource's rule refuses it.
    cookie, status, _ = sev_attest(t, t.module.hd_b)
    t.eq(status, 200, "attest B")
    status, _, data = request(t.module.port, "GET", "/kbs/v0/resource/default/key/k1",
                              headers=cookie)
    t.eq(status, 403, "B's resource request")
    # One changed field: the rebuilt bytes do not carry the signature.
    _, status, data = sev_attest(t, t.module.hd_a, tamper=True)
    t.eq(status, 401, "tampered report object")
    t.check("signature" in problem(t, data, "AttestationFailed"), "names the signature",
            data)


def test_sev_object_evidence_client(t):
    r = get(t, "a", extra=["--evidence-form", "sev"])
    t.eq(r.returncode, 0, "get-resource with the sev form: " + r.stderr)
    with open(t.path("out.bin"), "rb") as f:
        t.eq(f.read(), b"the pod's key\x00\x01", "decrypted resource")
    r = get(t, "b", extra=["--evidence-form", "sev"])
    t.check(r.returncode == 1 and "HTTP 403 PolicyDeny" in r.stderr, "B refused", r.stderr)


def test_admin_get_set_delete_resource_policy(t):
    m = t.module
    tok = {"Authorization": "Bearer " + m.admin_token}
    for h in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
        for path in ("/kbs/v0/resource-policy", "/kbs/v0/resource-policy/default/key/k1"):
            status, _, data = request(m.port, "GET", path, headers=h)
            t.eq(status, 401, "GET %s without the admin token" % path)
            t.check(m.hd_a not in data.decode(), "no rule leaked", data)
    status, _, data = request(m.port, "GET", "/kbs/v0/resource-policy/default/key/k1",
                              headers=tok)
    t.eq(status, 200, "GET one")
    t.eq(json.loads(data), {"path": "default/key/k1", "rule": {"host_data": [m.hd_a]}},
         "the rule as set")
    status, _, data = request(m.port, "GET", "/kbs/v0/resource-policy/default/key/none",
                              headers=tok)
    t.eq(status, 404, "GET of a resource without a rule")
    problem(t, data, "ResourceNotFound")
    status, _, data = request(m.port, "GET", "/kbs/v0/resource-policy/a/../b", headers=tok)
    t.eq(status, 400, "bad path")
    # SET a rule for a new resource, readable back, effective at once.
    admin(m.port, "POST", "/kbs/v0/resource/default/key/k2", b"for pod B", m.admin_token,
          expect=200)
    rule = {"host_data": [m.hd_b], "measurements": [MEAS]}
    admin(m.port, "POST", "/kbs/v0/resource-policy",
          json.dumps({"path": "default/key/k2", "rule": rule}).encode(), m.admin_token,
          expect=200)
    status, _, data = request(m.port, "GET", "/kbs/v0/resource-policy", headers=tok)
    t.eq(status, 200, "GET all")
    listed = {p["path"]: p["rule"] for p in json.loads(data)["policies"]}
    t.eq(listed.get("default/key/k2"), rule, "k2 listed")
    t.eq(listed.get("default/key/k1"), {"host_data": [m.hd_a]}, "k1 listed")
    r = get(t, "b", "default/key/k2")
    t.eq(r.returncode, 0, "B gets k2: " + r.stderr)
    # DELETE: without the token nothing changes; with it, deny by default again.
    status, _, _ = request(m.port, "DELETE", "/kbs/v0/resource-policy/default/key/k2")
    t.eq(status, 401, "DELETE without the admin token")
    status, _, data = request(m.port, "DELETE", "/kbs/v0/resource-policy/default/key/k2",
                              headers=tok)
    t.eq(status, 200, "DELETE")
    r = get(t, "b", "default/key/k2")
    t.check(r.returncode == 1 and "no policy" in r.stderr, "denied after DELETE", r.stderr)
    status, _, _ = request(m.port, "DELETE", "/kbs/v0/resource-policy/default/key/k2",
                           headers=tok)
    t.eq(status, 404, "second DELETE")


# ---- sealed secrets (CoCo's format), unsealed through the KBS client ----

def unseal(t, tee, value, extra=()):
    return t.run([t.prog("sealpod"), "kbs", "unseal", "--url", t.module.url, "--tee",
                  "sim:" + t.module.psp[tee]] + list(extra) + [value], text=False)


def test_sealed_secret_unsealed_through_the_broker(t):
    s = t.prog("sealpod")
    m = t.module
    sealed = t.run([s, "kbs", "seal", "kbs:///default/key/k1"], check=True).stdout.strip()
    t.check(sealed.startswith("sealed.fakejwsheader.") and "pod's key" not in sealed,
            "CoCo's unsigned form, no value inside", sealed)
    r = unseal(t, "a", sealed)
    t.eq(r.returncode, 0, "unseal for pod A: %s" % r.stderr)
    t.eq(r.stdout, b"the pod's key\x00\x01", "the resource's bytes")
    # Another pod policy: refused, naming the resource, not the value.
    r = unseal(t, "b", sealed)
    err = r.stderr.decode()
    t.check(r.returncode == 1 and "default/key/k1" in err and "403" in err
            and sealed[30:60] not in err, "B refused naming the resource", err)
    # A resource that does not exist.
    gone = t.run([s, "kbs", "seal", "kbs:///default/key/gone"], check=True).stdout.strip()
    r = unseal(t, "a", gone)
    t.check(r.returncode == 1 and "default/key/gone" in r.stderr.decode(), "missing resource",
            r.stderr)
    # Signed sealed secrets: the verification key is itself a broker resource.
    t.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-out", t.path("seal.pem")], check=True)
    jwk = t.run([s, "kbs", "jwk", t.path("seal.pem")], check=True).stdout.strip().encode()
    admin(m.port, "POST", "/kbs/v0/resource/default/keys/sealing", jwk, m.admin_token, 200)
    admin(m.port, "POST", "/kbs/v0/resource-policy", json.dumps(
        {"path": "default/keys/sealing", "rule": {"host_data": [m.hd_a]}}).encode(),
        m.admin_token, 200)
    signed = t.run([s, "kbs", "seal", "--sign-key", t.path("seal.pem"), "--kid",
                    "kbs:///default/keys/sealing", "kbs:///default/key/k1"],
                   check=True).stdout.strip()
    r = unseal(t, "a", signed, ["--require-signature"])
    t.eq(r.returncode, 0, "signed, verified: %s" % r.stderr)
    t.eq(r.stdout, b"the pod's key\x00\x01", "the resource through a signed value")
    r = unseal(t, "a", sealed, ["--require-signature"])
    t.check(r.returncode == 1 and "unsigned" in r.stderr.decode(), "unsigned refused",
            r.stderr)
    # Signed by another key under the same kid.
    t.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-out", t.path("other.pem")], check=True)
    forged = t.run([s, "kbs", "seal", "--sign-key", t.path("other.pem"), "--kid",
                    "kbs:///default/keys/sealing", "kbs:///default/key/k1"],
                   check=True).stdout.strip()
    r = unseal(t, "a", forged, ["--require-signature"])
    t.check(r.returncode == 1 and "does not verify" in r.stderr.decode(), "forged refused",
            r.stderr)
    # Malformed values never reach the broker and are not echoed.
    import base64
    payload = base64.urlsafe_b64encode(json.dumps(
        {"version": "0.9.0", "type": "vault", "provider": "kbs", "name": "kbs:///a/b/c",
         "provider_settings": {}}).encode()).rstrip(b"=").decode()
    r = unseal(t, "a", "sealed.x.%s.y" % payload)
    t.check(r.returncode == 1 and "version" in r.stderr.decode()
            and payload[:20] not in r.stderr.decode(), "bad version", r.stderr)
    r = unseal(t, "a", "sealed.x.eyJ2ZXJzaW9uIjoiOSJ9.y")
    t.check(r.returncode == 1 and "sealed secret" in r.stderr.decode(), "incomplete payload",
            r.stderr)


# ---- TLS between guest and broker (the CA a pod policy pins) ----

def make_ca(t, name):
    key, pem = t.path(name + ".key"), t.path(name + ".pem")
    t.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", key, "-out", pem, "-days", "2", "-subj", "/CN=" + name],
          check=True)
    return key, pem


def make_server_cert(t, name, ca, san):
    key, csr, pem, ext = (t.path(name + x) for x in (".key", ".csr", ".pem", ".ext"))
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % san)
    t.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", key, "-out", csr, "-subj", "/CN=sealpod-kbs"], check=True)
    t.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0],
           "-CAcreateserial", "-out", pem, "-days", "2", "-extfile", ext], check=True)
    return key, pem


def test_tls_with_the_pinned_ca(t):
    m = t.module
    ca, other_ca = make_ca(t, "kbs-ca"), make_ca(t, "other-ca")
    key, cert = make_server_cert(t, "srv", ca, "IP:127.0.0.1")
    t.admin_file = m.admin_file
    url, port = start_kbs(t, "kbs-tls", ["--allow-sim", "--sim-root",
                                         os.path.join(m.state, "ark.pem"),
                                         "--cert", cert, "--key", key])
    t.check(url.startswith("https://"), "an https broker", url)
    r = t.run(["curl", "-sS", "--cacert", ca[1], "-H", "Authorization: Bearer " + m.admin_token,
               "--data-binary", "tls secret", url + "/kbs/v0/resource/default/key/tls"])
    t.eq(r.returncode, 0, "admin upload over TLS: " + r.stderr)
    r = t.run(["curl", "-sS", "--cacert", ca[1], "-H", "Authorization: Bearer " + m.admin_token,
               "--data-binary", json.dumps({"path": "default/key/tls",
                                            "rule": {"host_data": [m.hd_a]}}),
               url + "/kbs/v0/resource-policy"])
    t.eq(r.returncode, 0, "admin policy over TLS: " + r.stderr)
    r = get(t, "a", "default/key/tls", url=url, extra=["--ca", ca[1]])
    t.eq(r.returncode, 0, "released over TLS with the pinned CA: " + r.stderr)
    with open(t.path("out.bin"), "rb") as f:
        t.eq(f.read(), b"tls secret", "the resource")
    r = get(t, "a", "default/key/tls", url=url, extra=["--ca", other_ca[1]])
    t.check(r.returncode == 1 and "certificate" in r.stderr.lower(), "another CA refused",
            r.stderr)
    r = get(t, "a", "default/key/tls", url=url.replace("https://", "http://"),
            extra=["--ca", ca[1]])
    t.eq(r.returncode, 1, "plain http to the TLS port")
    # A certificate from the pinned CA but for another address.
    key2, cert2 = make_server_cert(t, "srv2", ca, "DNS:other.example")
    url2, _ = start_kbs(t, "kbs-tls2", ["--allow-sim", "--sim-root",
                                        os.path.join(m.state, "ark.pem"),
                                        "--cert", cert2, "--key", key2])
    r = get(t, "a", "default/key/tls", url=url2, extra=["--ca", ca[1]])
    t.check(r.returncode == 1 and ("certificate" in r.stderr.lower()
                                   or "verify" in r.stderr.lower()),
            "a certificate for another name refused", r.stderr)


def test_admin_cli(t):
    """`sealpod kbs admin`: the admin API from the command line."""
    m = t.module
    adm = [t.prog("sealpod"), "kbs", "admin", "--url", m.url, "--token-file", m.admin_file]
    with open(t.path("res"), "wb") as f:
        f.write(b"set by the CLI\x00")
    r = t.run(adm + ["put-resource", "default/key/cli", t.path("res")])
    t.eq(r.returncode, 0, "put-resource: " + r.stderr)
    r = t.run(adm + ["set-rule", "default/key/cli", json.dumps({"host_data": [m.hd_a]})])
    t.eq(r.returncode, 0, "set-rule: " + r.stderr)
    r = t.run(adm + ["get-rule", "default/key/cli"])
    t.eq(r.returncode, 0, "get-rule: " + r.stderr)
    t.eq(json.loads(r.stdout)["rule"], {"host_data": [m.hd_a]}, "the rule read back")
    r = get(t, "a", "default/key/cli")
    t.eq(r.returncode, 0, "released: " + r.stderr)
    with open(t.path("out.bin"), "rb") as f:
        t.eq(f.read(), b"set by the CLI\x00", "the resource the CLI stored")
    r = t.run(adm + ["get-rule"])
    t.check(r.returncode == 0 and "default/key/cli" in r.stdout, "all rules", r.stdout)
    r = t.run(adm + ["delete-rule", "default/key/cli"])
    t.eq(r.returncode, 0, "delete-rule: " + r.stderr)
    r = t.run(adm + ["get-rule", "default/key/cli"])
    t.check(r.returncode == 1 and "HTTP 404" in r.stderr, "gone", r.stderr)
    r = t.run(adm + ["set-rule", "default/key/cli", "{}"])
    t.check(r.returncode == 1 and "HTTP 400" in r.stderr, "a rule matching everyone", r.stderr)
    with open(t.path("bad.token"), "w") as f:
        f.write("not-the-admin-token-at-all\n")
    r = t.run([t.prog("sealpod"), "kbs", "admin", "--url", m.url, "--token-file",
               t.path("bad.token"), "get-rule"])
    t.check(r.returncode == 1 and "HTTP 401" in r.stderr, "wrong admin token", r.stderr)
    r = t.run(adm + ["frobnicate"])
    t.eq(r.returncode, 2, "unknown verb")
