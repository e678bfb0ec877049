"""SEV-SNP from the command line: `sealpod measure` against the reference
digests and Debian's OVMF, `sealpod verify` on reports signed by real AMD
chips, `sealpod report show`, and the sim PSP served over a socket and
reached through the guest-side TEE code."""
import hashlib
import json
import os
import struct

SANITIZE = True

VEC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vectors")
SNP = VEC + "/snp/"
MEASURE = VEC + "/measure/"
DEBIAN_OVMF = "/usr/share/ovmf/OVMF.fd"

CASES = [
    # name, report, vek, chain, extra args
    ("gsg-milan-v2", "go-sev-guest/verify_testdata_attestation.bin",
     "go-sev-guest/verify_testdata_vcek.testcer",
     "go-sev-guest/verify_trust_ask_ark_milan.pem", ["--allow-debug"]),
    ("virtee-milan-v2", "virtee-sev/tests_certs_data_report_milan.hex",
     "virtee-sev/tests_certs_data_vcek_milan.der",
     "virtee-sev/tests_certs_data_cert_chain_milan", []),
    ("trustee-milan-v2", "trustee/deps_verifier_test_data_snp_test-report.bin",
     "trustee/deps_verifier_test_data_snp_test-vcek.der",
     "trustee/deps_verifier_src_snp_milan_ask_ark_asvk.pem", []),
    ("trustee-milan-v3-vlek", "trustee/deps_verifier_test_data_snp_test-vlek-report.bin",
     "trustee/deps_verifier_test_data_snp_test-vlek.der",
     "trustee/deps_verifier_src_snp_milan_ask_ark_asvk.pem",
     ["--at", "2025-06-01T00:00:00Z", "--vmpl", "1"]),
    ("ms-aci-milan-v2", "ms-aci/pkg_attest_test_data_snp_report.bin",
     "ms-aci/DERIVED_vcek.pem", "ms-aci/DERIVED_ask_ark.pem", []),
]


def setup_module(m):
    # One sim key hierarchy for the module (RSA-4096 generation is slow).
    m.state = m.path("sim-state")


def measure_rows():
    with open(MEASURE + "snp-measure-cases.tsv") as f:
        lines = f.read().splitlines()
    for line in lines[1:]:
        yield line.split("\t")


def measure_args(row):
    ovmf, vcpus, vtype, vmm, kernel, initrd, append, gf, _ = row
    a = ["--mode", "snp", "--ovmf", MEASURE + ovmf, "--vcpus", vcpus,
         "--vmm-type", vmm, "--guest-features", gf, "--output-format", "hex"]
    if vtype != "-":
        a += ["--vcpu-type", vtype]
    if kernel != "-":
        a += ["--kernel", MEASURE + kernel]
    if initrd != "-":
        a += ["--initrd", MEASURE + initrd]
    if append not in ("-", ""):
        a += ["--append", append]
    return a


def test_measure_matches_reference_rows(t):
    n = 0
    for row in measure_rows():
        r = t.run([t.prog("sealpod"), "measure"] + measure_args(row))
        want = row[8]
        if want.startswith("ERROR"):
            t.check(r.returncode != 0, "row refused", row)
            t.check("SNP_KERNEL_HASHES" in r.stderr, "refusal names the section",
                    r.stderr)
            t.eq(r.stdout, "", "nothing on stdout")
        else:
            t.eq(r.returncode, 0, "exit code for %r (%s)" % (row, r.stderr))
            t.eq(r.stdout.strip(), want, "digest for %r" % (row,))
        n += 1
    t.check(n >= 38, "all rows ran", n)


# An independent model of the launch digest (AMD SNP ABI page updates, the
# OVMF footer table and a reset-state VMSA), to check the C calculator on
# Debian's full OVMF build where no reference digest exists.
def py_measure(fw, vcpus, sig, features):
    def guid(s):
        import uuid
        return uuid.UUID(s).bytes_le

    ld = bytes(48)

    def update(gpa, ptype, contents):
        nonlocal ld
        info = ld + contents + struct.pack("<HBBBBBBQ", 0x70, ptype, 0, 0, 0, 0, 0, gpa)
        ld = hashlib.sha384(info).digest()

    size = len(fw)
    base = (1 << 32) - size
    for off in range(0, size, 4096):
        update(base + off, 1, hashlib.sha384(fw[off:off + 4096]).digest())
    footer = size - 32 - 18
    assert fw[footer + 2:footer + 18] == guid("96b582de-1fb2-45f7-baea-a366c55a082d")
    tsize = struct.unpack_from("<H", fw, footer)[0] - 18
    table = fw[footer - tsize:footer]
    entries = {}
    while len(table) >= 18:
        esize = struct.unpack_from("<H", table, len(table) - 18)[0]
        g = table[len(table) - 16:]
        entries[g] = table[len(table) - esize:len(table) - 18]
        table = table[:len(table) - esize]
    meta_off = struct.unpack_from("<I", entries[guid("dc886566-984a-4798-a75e-5585a7bf67cc")])[0]
    hdr = size - meta_off
    assert fw[hdr:hdr + 4] == b"ASEV"
    n = struct.unpack_from("<I", fw, hdr + 12)[0]
    for i in range(n):
        gpa, sz, typ = struct.unpack_from("<III", fw, hdr + 16 + 12 * i)
        ptype = {1: 3, 2: 5, 3: 6, 4: 3, 0x10: 3}[typ]
        for off in range(0, sz, 4096):
            update(gpa + off, ptype, bytes(48))
    ap_eip = struct.unpack_from("<I", entries[guid("00f771de-1a7e-4fcb-890e-68c77e2fb44e")])[0]
    for i in range(vcpus):
        eip = 0xfffffff0 if i == 0 else ap_eip
        v = bytearray(4096)

        def seg(off, sel, attr, base_):
            struct.pack_into("<HHIQ", v, off, sel, attr, 0xffff, base_)
        for off, attr in ((0x00, 0x93), (0x20, 0x93), (0x30, 0x93), (0x40, 0x93),
                          (0x50, 0x93), (0x60, 0), (0x70, 0x82), (0x80, 0), (0x90, 0x8b)):
            seg(off, 0, attr, 0)
        seg(0x10, 0xf000, 0x9b, eip & 0xffff0000)
        for off, val in ((0xd0, 0x1000), (0x148, 0x40), (0x158, 0x10), (0x160, 0x400),
                         (0x168, 0xffff0ff0), (0x170, 2), (0x178, eip & 0xffff),
                         (0x268, 0x0007040600070406), (0x310, sig), (0x3b0, features),
                         (0x3e8, 1)):
            struct.pack_into("<Q", v, off, val)
        struct.pack_into("<I", v, 0x408, 0x1f80)
        struct.pack_into("<H", v, 0x410, 0x37f)
        update(0xFFFFFFFFF000, 2, hashlib.sha384(bytes(v)).digest())
    return ld.hex()


def test_measure_model_agrees_on_reference_rows(t):
    # The Python model reproduces the reference rows it covers, so it can
    # stand as the independent check for Debian's OVMF below.
    for row in measure_rows():
        if row[3] != "QEMU" or row[4] != "-" or row[8].startswith("ERROR"):
            continue
        with open(MEASURE + row[0], "rb") as f:
            fw = f.read()
        sig = {"EPYC-v4": 0x800f12}[row[2]]
        t.eq(py_measure(fw, int(row[1]), sig, int(row[7], 16)), row[8], "model %r" % (row,))


def test_measure_debian_ovmf(t):
    if not os.path.exists(DEBIAN_OVMF):
        from harness import Skip
        raise Skip("no %s" % DEBIAN_OVMF)
    with open(DEBIAN_OVMF, "rb") as f:
        fw = f.read()
    for vcpus in (1, 2):
        args = [t.prog("sealpod"), "measure", "--mode", "snp", "--ovmf", DEBIAN_OVMF,
                "--vcpus", str(vcpus), "--vcpu-type", "EPYC-v4"]
        a = t.run(args, check=True).stdout.strip()
        b = t.run(args, check=True).stdout.strip()
        t.eq(a, b, "deterministic")
        t.eq(a, py_measure(fw, vcpus, 0x800f12, 1), "matches the independent model")
    # Debian's OvmfPkgX64 has no kernel-hashes section: a kernel is refused
    # unless the sim's direct-boot rule is asked for.
    r = t.run([t.prog("sealpod"), "measure", "--mode", "snp", "--ovmf", DEBIAN_OVMF,
               "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--kernel", MEASURE + "kernel-small.bin"])
    t.check(r.returncode != 0 and "SNP_KERNEL_HASHES" in r.stderr, "kernel refused", r.stderr)
    r = t.run([t.prog("sealpod"), "measure", "--mode", "snp", "--ovmf", DEBIAN_OVMF,
               "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--kernel", MEASURE + "kernel-small.bin",
               "--sim-direct-boot"])
    t.eq(r.returncode, 0, "sim direct boot: " + r.stderr)


def test_measure_bad_input(t):
    s = t.prog("sealpod")
    r = t.run([s, "measure", "--mode", "snp", "--ovmf", "/nonexistent", "--vcpus", "1",
               "--vcpu-type", "EPYC-v4"])
    t.check(r.returncode == 1 and "/nonexistent" in r.stderr, "missing file named", r.stderr)
    r = t.run([s, "measure", "--mode", "snp", "--ovmf", MEASURE + "kernel-small.bin",
               "--vcpus", "1", "--vcpu-type", "EPYC-v4"])
    t.check(r.returncode == 1 and "OVMF" in r.stderr, "not firmware", r.stderr)
    r = t.run([s, "measure", "--mode", "sev", "--ovmf", DEBIAN_OVMF, "--vcpus", "1"])
    t.eq(r.returncode, 2, "bad mode is a usage error")
    r = t.run([s, "measure", "--mode", "snp", "--ovmf", MEASURE + "ovmf_AmdSev_suffix.bin",
               "--vcpus", "1", "--vcpu-type", "Pentium"])
    t.check(r.returncode == 1 and "Pentium" in r.stderr, "unknown vcpu type named", r.stderr)


def verify(t, report, vek, chain, extra):
    return t.run([t.prog("sealpod"), "verify", "--report", SNP + report, "--vcek", SNP + vek,
                  "--chain", SNP + chain] + extra)


def test_verify_amd_vectors(t):
    for name, report, vek, chain, extra in CASES:
        r = verify(t, report, vek, chain, extra)
        t.eq(r.returncode, 0, "%s verifies (%s)" % (name, r.stderr))
        claims = json.loads(r.stdout)
        t.eq(claims["verified"]["sim"], False, name + " is not sim")
        t.eq(claims["verified"]["root"], "ARK-Milan", name + " root")
    # The built-in intermediates suffice when no chain is given.
    r = t.run([t.prog("sealpod"), "verify", "--report", SNP + CASES[2][1],
               "--vcek", SNP + CASES[2][2]])
    t.eq(r.returncode, 0, "built-in chain: " + r.stderr)


def test_verify_refusals_name_the_check(t):
    name, report, vek, chain, extra = CASES[0]
    r = verify(t, report, vek, chain, [])
    t.check(r.returncode != 0 and "debug" in r.stderr, "debug refused", r.stderr)
    t.eq(r.stdout, "", "no claims on refusal")
    r = verify(t, report, vek, chain, ["--allow-debug", "--min-tcb", "bl=3"])
    t.check(r.returncode != 0 and "min-tcb" in r.stderr, "min tcb", r.stderr)
    r = verify(t, report, vek, chain, ["--allow-debug", "--expect-report-data", "0102030405"])
    t.eq(r.returncode, 0, "report data prefix zero-padded: " + r.stderr)
    r = verify(t, report, vek, chain, ["--allow-debug", "--expect-report-data", "0102030406"])
    t.check(r.returncode != 0 and "report-data" in r.stderr, "report data", r.stderr)
    r = verify(t, report, vek, chain, ["--allow-debug", "--expect-measurement", "00" * 48])
    t.check(r.returncode != 0 and "measurement" in r.stderr, "measurement", r.stderr)
    r = verify(t, report, vek, chain, ["--allow-debug", "--vmpl", "2"])
    t.check(r.returncode != 0 and "vmpl" in r.stderr, "vmpl", r.stderr)
    # VLEK outside its validity window
    name, report, vek, chain, extra = CASES[3]
    r = verify(t, report, vek, chain, [])
    t.check(r.returncode != 0 and "expired" in r.stderr, "VLEK expired now", r.stderr)
    # ms-aci: HOST_DATA is the SHA-256 of the policy
    name, report, vek, chain, extra = CASES[4]
    import base64
    with open(SNP + "ms-aci/pkg_attest_test_data_uvm_security_policy.base64") as f:
        pol = base64.b64decode(f.read().strip())
    hd = hashlib.sha256(pol).hexdigest()
    r = verify(t, report, vek, chain, ["--expect-host-data", hd])
    t.eq(r.returncode, 0, "host data matches: " + r.stderr)
    r = verify(t, report, vek, chain, ["--expect-host-data", "00" * 32])
    t.check(r.returncode != 0 and "host-data" in r.stderr, "host data", r.stderr)
    # A tampered copy fails its signature.
    with open(SNP + CASES[2][1], "rb") as f:
        raw = bytearray(f.read())
    raw[0x90] ^= 1
    bad = t.path("bad.bin")
    with open(bad, "wb") as f:
        f.write(raw)
    r = t.run([t.prog("sealpod"), "verify", "--report", bad, "--vcek", SNP + CASES[2][2]])
    t.check(r.returncode != 0 and "signature" in r.stderr, "tampered", r.stderr)
    # The wrong chip's VCEK
    r = t.run([t.prog("sealpod"), "verify", "--report", SNP + CASES[2][1],
               "--vcek", SNP + CASES[0][2]])
    t.check(r.returncode != 0, "wrong VCEK refused", r.stderr)


def test_report_show(t):
    r = t.run([t.prog("sealpod"), "report", "show", SNP + CASES[3][1]], check=True)
    j = json.loads(r.stdout)
    t.eq(j["version"], 3, "version")
    t.eq(j["signer_info"]["signing_key"], "vlek", "signing key")
    t.eq(j["vmpl"], 1, "vmpl")
    r = t.run([t.prog("sealpod"), "report", "show", SNP + "ms-aci/LICENSE.txt"])
    t.check(r.returncode == 1 and "report" in r.stderr, "garbage refused", r.stderr)


def test_sim_psp_served_and_verified(t):
    s = t.prog("sealpod")
    state = t.module.state
    sock = t.path("psp.sock")
    env = dict(os.environ, SEALPOD_SIM_STATE=state)
    ovmf = MEASURE + "ovmf_AmdSev_suffix.bin"
    launch = ["--ovmf", ovmf, "--vcpus", "2", "--vcpu-type", "EPYC-v4",
              "--kernel", MEASURE + "kernel-small.bin", "--append", "console=ttyS0"]
    host_data = "ab" * 32
    p = t.spawn([s, "sim-psp", "--listen", "unix:" + sock, "--state", state,
                 "--host-data", host_data] + launch, env=env)
    import time
    deadline = time.time() + 120
    while not os.path.exists(sock):
        t.check(p.poll() is None, "sim-psp running")
        t.check(time.time() < deadline, "sim-psp socket appears")
        time.sleep(0.05)
    rep, certs = t.path("r.bin"), t.path("c.bin")
    nonce = "5a" * 64
    t.run([s, "sim-psp", "--tee", "sim:" + sock, "--report-data", nonce, "--out", rep,
           "--certs", certs], check=True)
    meas = t.run([s, "measure", "--mode", "snp", "--vmm-type", "QEMU"] + launch,
                 check=True).stdout.strip()
    base = [s, "verify", "--report", rep, "--certs", certs,
            "--expect-report-data", nonce, "--expect-host-data", host_data,
            "--expect-measurement", meas, "--vmpl", "0"]
    r = t.run(base)
    t.check(r.returncode != 0 and "sim" in r.stderr and "--allow-sim" in r.stderr,
            "sim refused by default", r.stderr)
    r = t.run(base + ["--allow-sim", "--sim-root", os.path.join(state, "ark.pem")])
    t.eq(r.returncode, 0, "sim report verifies with --allow-sim: " + r.stderr)
    claims = json.loads(r.stdout)
    t.eq(claims["verified"]["sim"], True, "claims say sim")
    t.eq(claims["verified"]["product"], "Sim-Milan", "sim product")
    t.eq(claims["measurement"], meas, "measurement is the launch digest")
    # The default sim root location comes from SEALPOD_SIM_STATE.
    r = t.run(base + ["--allow-sim"], env=env)
    t.eq(r.returncode, 0, "default sim root: " + r.stderr)
    # The key hierarchy is reused, not regenerated.
    with open(os.path.join(state, "ark.pem")) as f:
        root1 = f.read()
    rep2 = t.path("r2.bin")
    t.run([s, "sim-psp", "--state", state, "--measurement", "11" * 48, "--out", rep2],
          check=True)
    with open(os.path.join(state, "ark.pem")) as f:
        t.eq(f.read(), root1, "sim root unchanged")
    # Garbage on the socket does not kill the sim PSP.
    import socket
    c = socket.socket(socket.AF_UNIX)
    c.connect(sock)
    c.sendall(b"GARBAGE-GARBAGE-GARBAGE")
    c.settimeout(10)
    resp = c.recv(64)
    c.close()
    t.check(resp[:4] == b"SPSP", "error frame", resp)
    t.run([s, "sim-psp", "--tee", "sim:" + sock, "--out", rep], check=True)
    t.check(p.poll() is None, "still serving")
