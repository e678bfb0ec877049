"""Signed release manifests: `sealpod image build --sign KEY` signs the
guest image's manifest (Ed25519, detached manifest.json.sig); `sealpod
verify --manifest FILE --manifest-key PUB` accepts a report only if the
manifest is PUB's and lists the report's measurement; the key broker's
resource rules can name the manifest key instead of raw measurements."""
import json
import os

SANITIZE = True

OVMF = "/usr/share/ovmf/OVMF.fd"


def keypair(m, name):
    key, pub = m.path(name + ".pem"), m.path(name + ".pub")
    m.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True)
    m.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True)
    return key, pub


def setup_module(m):
    s = m.prog("sealpod")
    m.key, m.pub = keypair(m, "release")
    m.other_key, m.other_pub = keypair(m, "other")
    # A real guest image, signed by the build. The sim's measurement of
    # this image (1 vCPU, Debian's OVMF, sim direct boot) is in it.
    m.img = m.path("img")
    m.run([s, "image", "build", "--output", m.img, "--compress", "gzip", "--ovmf", OVMF,
           "--vcpus", "1", "--sign", m.key], check=True, timeout=600)
    m.manifest = os.path.join(m.img, "manifest.json")
    with open(m.manifest) as f:
        m.sim_meas = json.load(f)["snp"]["sim_launch_measurement"]
    m.state = m.path("sim-state")
    m.hd = "ab" * 32

    def report(name, meas):
        out = m.path(name + ".bin")
        m.run([s, "sim-psp", "--state", m.state, "--measurement", meas, "--host-data", m.hd,
               "--out", out, "--certs", out + ".certs"], check=True, timeout=300)
        return out
    # Reports crafted with the sim PSP: one with the image's measurement,
    # one with another (an image this release does not contain).
    m.good = report("good", m.sim_meas)
    m.bad = report("bad", "cd" * 48)


def verify(t, report, manifest=None, pub=None, extra=()):
    m = t.module
    argv = [t.prog("sealpod"), "verify", "--report", report, "--certs", report + ".certs",
            "--allow-sim", "--sim-root", os.path.join(m.state, "ark.pem")]
    if manifest:
        argv += ["--manifest", manifest, "--manifest-key", pub or m.pub]
    return t.run(argv + list(extra))


def copy_image_manifest(t, name, edit=None, sig_edit=None):
    m = t.module
    with open(m.manifest, "rb") as f:
        data = f.read()
    with open(m.manifest + ".sig") as f:
        sig = json.load(f)
    if edit:
        data = edit(data)
    if sig_edit:
        sig_edit(sig)
    path = t.path(name)
    with open(path, "wb") as f:
        f.write(data)
    with open(path + ".sig", "w") as f:
        json.dump(sig, f)
    return path


def test_build_signs_the_manifest(t):
    m = t.module
    with open(m.manifest + ".sig") as f:
        sig = json.load(f)
    t.eq(sorted(sig), ["algorithm", "format", "key_id", "manifest_sha256", "signature"],
         "signature file members")
    t.eq(sig["algorithm"], "Ed25519", "algorithm")
    r = t.run([t.prog("sealpod"), "release", "key-id", m.pub], check=True)
    t.eq(sig["key_id"], r.stdout.strip(), "key id of the signing key")
    r = t.run([t.prog("sealpod"), "release", "verify", "--key", m.pub, m.manifest])
    t.eq(r.returncode, 0, "release verify: " + r.stderr)
    t.eq(json.loads(r.stdout)["sim_launch_measurement"], m.sim_meas, "listed measurement")
    # The signature is over the exact bytes openssl sees too.
    r = t.run([t.prog("sealpod"), "image", "build", "--output", t.path("x"), "--sign",
               t.path("missing.pem")])
    t.check(r.returncode == 1 and "--sign" in r.stderr, "a missing key refused first",
            r.stderr)


def test_verify_accepts_a_listed_measurement(t):
    r = verify(t, t.module.good, t.module.manifest)
    t.eq(r.returncode, 0, "verify: " + r.stderr)
    claims = json.loads(r.stdout)
    t.eq(claims["measurement"], t.module.sim_meas, "measurement")
    t.eq(claims["release_manifest"]["measurement"], "sim_launch_measurement", "matched field")


def test_verify_refuses_a_measurement_not_listed(t):
    r = verify(t, t.module.bad)
    t.eq(r.returncode, 0, "without --manifest the report itself verifies: " + r.stderr)
    r = verify(t, t.module.bad, t.module.manifest)
    t.eq(r.returncode, 1, "exit code")
    t.check("REFUSED: appraisal" in r.stderr and "cd" * 48 in r.stderr
            and "not one" in r.stderr, "names the measurement", r.stderr)


def test_verify_refuses_a_tampered_manifest(t):
    # One byte changed (the debug flag, as someone wanting a debug image would).
    p = copy_image_manifest(t, "tampered.json",
                            edit=lambda d: d.replace(b'"debug": false', b'"debug": true '))
    r = verify(t, t.module.good, p)
    t.check(r.returncode == 1 and "REFUSED: signature" in r.stderr
            and "changed after signing" in r.stderr, "tampered manifest", r.stderr)
    # The same with the signature file's hash updated to match: the
    # Ed25519 signature itself then fails.
    import hashlib

    def rehash(sig):
        with open(p, "rb") as f:
            sig["manifest_sha256"] = hashlib.sha256(f.read()).hexdigest()
    p2 = copy_image_manifest(t, "tampered2.json",
                             edit=lambda d: d.replace(b'"debug": false', b'"debug": true '))
    with open(p2 + ".sig") as f:
        sig = json.load(f)
    rehash(sig)
    with open(p2 + ".sig", "w") as f:
        json.dump(sig, f)
    r = verify(t, t.module.good, p2)
    t.check(r.returncode == 1 and "REFUSED: signature" in r.stderr
            and "does not verify" in r.stderr, "tampered manifest, rehashed", r.stderr)
    # A manifest whose listed measurement was replaced by the bad report's.
    p3 = copy_image_manifest(t, "swapped.json", edit=lambda d: d.replace(
        t.module.sim_meas.encode(), b"cd" * 48))
    r = verify(t, t.module.bad, p3)
    t.check(r.returncode == 1 and "REFUSED: signature" in r.stderr, "swapped measurement",
            r.stderr)
    # No signature file at all.
    with open(t.path("unsigned.json"), "wb") as f, open(t.module.manifest, "rb") as g:
        f.write(g.read())
    r = verify(t, t.module.good, t.path("unsigned.json"))
    t.check(r.returncode == 1 and "signature" in r.stderr, "unsigned manifest", r.stderr)


def test_verify_refuses_another_key(t):
    m = t.module
    p = copy_image_manifest(t, "resigned.json")
    r = t.run([t.prog("sealpod"), "release", "sign", "--key", m.other_key, p])
    t.eq(r.returncode, 0, "re-sign with the other key: " + r.stderr)
    r = verify(t, m.good, p)
    t.check(r.returncode == 1 and "REFUSED: signature" in r.stderr
            and "another key" in r.stderr, "signed by another key", r.stderr)
    # The image's own manifest against the other key as the trusted one.
    r = verify(t, m.good, m.manifest, pub=m.other_pub)
    t.check(r.returncode == 1 and "another key" in r.stderr, "other trusted key", r.stderr)
    # Only Ed25519 keys.
    t.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-out", t.path("ec.pem")], check=True)
    r = verify(t, m.good, m.manifest, pub=t.path("ec.pem"))
    t.check(r.returncode == 1 and "Ed25519" in r.stderr, "EC key refused", r.stderr)


def test_hardware_measurement_field_for_hardware_reports(t):
    # A sim report is matched against sim_launch_measurement only: a
    # manifest listing the value as launch_measurement does not do.
    p = copy_image_manifest(t, "hw.json", edit=lambda d: d.replace(
        b'"sim_launch_measurement"', b'"launch_measurement"    '))
    r = t.run([t.prog("sealpod"), "release", "sign", "--key", t.module.key, p], check=True)
    r = verify(t, t.module.good, p)
    t.check(r.returncode == 1 and "no snp.sim_launch_measurement" in r.stderr,
            "sim report vs hardware field", r.stderr)


def test_verify_flag_errors(t):
    r = t.run([t.prog("sealpod"), "verify", "--report", t.module.good, "--manifest",
               t.module.manifest])
    t.check(r.returncode == 2 and "--manifest-key" in r.stderr, "key required", r.stderr)


# ---- the key broker: a rule naming the manifest key, not measurements ----

def test_broker_rule_names_the_manifest_key(t):
    import base64
    import subprocess
    import test_kbs
    m = t.module
    s = t.prog("sealpod")
    t.admin_token = "release-test-admin-token-0123456789"
    t.admin_file = t.path("admin.token")
    with open(t.admin_file, "w") as f:
        f.write(t.admin_token + "\n")
    url, port = test_kbs.start_kbs(t, "kbs", ["--allow-sim", "--sim-root",
                                              os.path.join(m.state, "ark.pem")])
    # Three guests: the image's measurement, an upgraded image's, and one
    # whose release is signed by another key.
    upgrade_meas, rogue_meas = "12" * 48, "34" * 48
    psp = {}
    for name, meas in (("v1", m.sim_meas), ("v2", upgrade_meas), ("rogue", rogue_meas)):
        sock = t.path("psp-%s.sock" % name)
        t.spawn([s, "sim-psp", "--listen", "unix:" + sock, "--state", m.state,
                 "--measurement", meas, "--host-data", m.hd],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        test_kbs.wait_socket(t, _Proc(), sock, "sim-psp " + name)
        psp[name] = sock

    def get(name):
        return t.run([s, "kbs", "get-resource", "--url", url, "--tee", "sim:" + psp[name],
                      "--out", t.path("out.bin"), "default/key/release"])

    def upload(manifest_path, expect=200):
        with open(manifest_path, "rb") as f:
            man = f.read()
        with open(manifest_path + ".sig") as f:
            sig = json.load(f)
        return test_kbs.admin(port, "POST", "/kbs/v0/manifest", json.dumps(
            {"manifest": base64.b64encode(man).decode(), "signature": sig}).encode(),
            t.admin_token, expect)

    with open(m.pub) as f:
        pub_pem = f.read()
    test_kbs.admin(port, "POST", "/kbs/v0/resource/default/key/release", b"release secret",
                   t.admin_token, 200)
    test_kbs.admin(port, "POST", "/kbs/v0/resource-policy", json.dumps(
        {"path": "default/key/release",
         "rule": {"host_data": [m.hd], "manifest_key": pub_pem}}).encode(),
        t.admin_token, 200)
    # No manifest uploaded yet: nothing is listed, so nothing is released.
    r = get("v1")
    t.check(r.returncode == 1 and "403" in r.stderr and "manifest" in r.stderr,
            "refused before any manifest", r.stderr)
    upload(m.manifest)
    r = get("v1")
    t.eq(r.returncode, 0, "released to the image's measurement: " + r.stderr)
    with open(t.path("out.bin"), "rb") as f:
        t.eq(f.read(), b"release secret", "the resource")
    r = get("v2")
    t.check(r.returncode == 1 and upgrade_meas in r.stderr, "v2 not yet released",
            r.stderr)
    # The upgrade: a new manifest signed by the same key; no policy edit.
    v2 = copy_image_manifest(t, "v2.json", edit=lambda d: d.replace(
        m.sim_meas.encode(), upgrade_meas.encode()))
    t.run([s, "release", "sign", "--key", m.key, v2], check=True)
    # (this one through the CLI)
    r = t.run([s, "kbs", "admin", "--url", url, "--token-file", t.admin_file, "put-manifest",
               v2])
    t.eq(r.returncode, 0, "kbs admin put-manifest: " + r.stderr)
    t.eq(json.loads(r.stdout)["key_id"],
         t.run([s, "release", "key-id", m.pub], check=True).stdout.strip(), "stored key id")
    r = get("v2")
    t.eq(r.returncode, 0, "released after the upgrade's manifest: " + r.stderr)
    r = get("v1")
    t.eq(r.returncode, 0, "v1 still released: " + r.stderr)
    # A release signed by another key lists nothing for this rule.
    rogue = copy_image_manifest(t, "rogue.json", edit=lambda d: d.replace(
        m.sim_meas.encode(), rogue_meas.encode()))
    t.run([s, "release", "sign", "--key", m.other_key, rogue], check=True)
    upload(rogue)
    r = get("rogue")
    t.check(r.returncode == 1 and "403" in r.stderr and rogue_meas in r.stderr,
            "another key's manifest does not count", r.stderr)
    # A signature file relabelled with the trusted key id: stored, but it
    # does not verify, so it lists nothing either.
    with open(rogue + ".sig") as f:
        sig = json.load(f)
    sig["key_id"] = t.run([s, "release", "key-id", m.pub], check=True).stdout.strip()
    with open(rogue + ".sig", "w") as f:
        json.dump(sig, f)
    upload(rogue)
    r = get("rogue")
    t.check(r.returncode == 1 and "403" in r.stderr, "relabelled signature refused",
            r.stderr)
    # Uploads: a signature for another manifest, and no admin token.
    bad = copy_image_manifest(t, "bad.json", edit=lambda d: d + b" ")
    data = upload(bad, expect=400)
    t.check(b"another manifest" in data, "mismatched upload", data)
    with open(m.manifest, "rb") as f:
        body = json.dumps({"manifest": base64.b64encode(f.read()).decode(),
                           "signature": {}}).encode()
    test_kbs.admin(port, "POST", "/kbs/v0/manifest", body, None, 401)
    # A rule whose manifest_key is not an Ed25519 key is refused at upload.
    test_kbs.admin(port, "POST", "/kbs/v0/resource-policy", json.dumps(
        {"path": "default/key/x", "rule": {"manifest_key": "junk"}}).encode(),
        t.admin_token, 400)


class _Proc:
    """wait_socket's process stand-in (the PSPs are watched by the harness)."""
    def poll(self):
        return None
