"""Images pulled from a registry INTO a running UVM (issue 9): Debian's
docker-registry on 127.0.0.1, the UVM on QEMU user networking (the guest
reaches the host's 127.0.0.1:PORT as 10.0.2.2:PORT), and the agent pulling
by the policy's digest over plain http to 10.0.2.2, or over https with the
CA the policy pins (policy.registries), verifying as for a disk. One UVM driven over ttRPC (the pod of agentpod.py, its images from a
"registry" storage instead of the oci-store disk), and one `sealpod run
--registry --registry-ca` over https. The UVM setup is test_agent_vm's."""
import glob
import gzip
import os
import struct
import subprocess
import zlib

import harness

NEEDS_ROOT = True
SLOW = 4  # deadlines under TCG on a shared machine

POD = """apiVersion: v1
kind: Pod
metadata:
  name: regpod
spec:
  restartPolicy: Never
  containers:
  - name: hello
    image: docker.io/library/busybox:latest
    command: ["/bin/sh", "-c", "echo pulled from the registry into the UVM"]
"""


def setup_module(m):
    import agentpod
    import guest
    import images
    import test_agent_vm as vm
    if not guest.have_kernel():
        raise harness.Skip("no guest kernel: install linux-source-6.12 (scripts/install-deps)")
    # https registries on 127.0.0.1 (10.0.2.2 to the UVM): `treg` with a
    # certificate from the CA the policy pins, `oreg` from another CA at an
    # address the policy also lists with the pinned CA (as a host would
    # answer in the registry's place).
    pki = images.make_pki(m.path("pki"))
    other = images.make_pki(m.path("pki"), name="other")
    m.treg = images.Registry(m, tls=pki)
    m.oreg = images.Registry(m, tls=other)
    layout = images.busybox_layout()
    m.treg.push(layout, images.TAG, "library/busybox:latest")
    m.oreg.push(layout, images.TAG, "library/busybox:latest")
    with open(pki["ca"]) as f:
        ca = f.read()
    m.pod = agentpod.Pod(m, gen_args=["--registry", m.treg.url, "--registry-ca", pki["ca"]],
                         edit=lambda pol: pol["registries"].append(
                             {"host": "10.0.2.2:%d" % m.oreg.port, "ca": ca}))
    m.reg = images.Registry(m)
    # The policy pins the layout's manifest digest: the registry must
    # serve exactly those bytes (skopeo keeps the OCI manifest).
    pushed = m.reg.push(images.busybox_layout(), images.TAG, "library/busybox:latest")
    if pushed != m.pod.digest:
        raise harness.Failure("the registry stores %s, the policy pins %s" % (pushed, m.pod.digest))
    m.guest_url = "http://10.0.2.2:%d" % m.reg.port
    m.image = guest.guest_image()
    m.run_dir = m.path("run")
    os.makedirs(m.run_dir)
    m.qemu = m.spawn(vm.qemu_argv(m.image, m.run_dir, None, net=True), stdin=subprocess.DEVNULL,
                     stdout=open(m.path("qemu.log"), "w"), stderr=subprocess.STDOUT)
    vm.wait_file(os.path.join(m.run_dir, "simpsp.sock"), 30, "QEMU's sim PSP socket")
    state = m.path("psp-state")
    os.makedirs(state)
    m.spawn([m.prog("sealpod"), "sim-psp", "--connect", os.path.join(m.run_dir, "simpsp.sock"),
             "--state", state, "--measurement", "00" * 48, "--host-data", m.pod.host_data],
            stdout=subprocess.DEVNULL, stderr=open(m.path("psp.log"), "w"))
    m.c = vm.connect_agent(m, 180)
    m.c.call("SetPolicy", policy=m.pod.policy.decode(), timeout_s=30 * SLOW)
    # The pod's image store is the registry (no disk in this UVM).
    m.c.call("CreateSandbox", hostname=agentpod.HOSTNAME, sandbox_id="pod2", pod_name="pod2",
             pod_namespace="default", storages=[{"driver": "registry", "source": m.guest_url}],
             timeout_s=30 * SLOW)


def rpc_error(fn):
    import test_agent
    try:
        fn()
    except test_agent.RpcError as e:
        return e
    return None


def test_pull_from_registry_into_the_uvm(t):
    import agentpod
    import test_agent_vm as vm
    m = t.module
    c = m.c
    c.call("CreateContainer", container_id="w", container_name="writer", image=m.pod.image,
           oci_spec=m.pod.specs["writer"], timeout_s=120 * SLOW)
    c.call("StartContainer", container_id="w", timeout_s=30 * SLOW)
    t.eq(agentpod.first(c.call("ReadStdout", container_id="w", len=100, timeout_s=60 * SLOW), 1),
         b"written\n", "output of the container pulled from the registry")
    c.call("RemoveContainer", container_id="w", timeout=1, timeout_s=60 * SLOW)
    t.check(m.qemu.poll() is None, "the UVM is still running", vm.console(m))


def test_other_digest_or_plain_http_host_refused(t):
    import agentpod
    m = t.module
    c = m.c
    # A digest the policy does not pin: the policy refuses before any pull.
    other = m.pod.image.split("@")[0] + "@sha256:" + "0" * 64
    agentpod.expect_denied(t, lambda: c.call("CreateContainer", container_id="x1",
                                             container_name="writer", image=other,
                                             oci_spec=m.pod.specs["writer"], timeout_s=60 * SLOW),
                           "an image digest the policy does not pin")
    # Plain http to anything but the host (10.0.2.2) is refused in the guest.
    e = rpc_error(lambda: c.call("CreateContainer", container_id="x2", container_name="writer",
                                 image=m.pod.image, oci_spec=m.pod.specs["writer"],
                                 storages=[{"driver": "registry", "source": "http://10.0.2.3:%d"
                                            % m.reg.port}], timeout_s=60 * SLOW))
    t.check(e is not None and "plain http" in e.message, "plain http to 10.0.2.3 refused",
            e and e.message)


def test_pull_over_https_with_the_policy_ca(t):
    """https://10.0.2.2:PORT with the CA from policy.registries: the guest
    image has no CA store, so this CA is the only one it trusts."""
    import agentpod
    m = t.module
    c = m.c
    c.call("CreateContainer", container_id="tls", container_name="writer", image=m.pod.image,
           oci_spec=m.pod.specs["writer"],
           storages=[{"driver": "registry", "source": "https://10.0.2.2:%d" % m.treg.port}],
           timeout_s=120 * SLOW)
    c.call("StartContainer", container_id="tls", timeout_s=30 * SLOW)
    t.eq(agentpod.first(c.call("ReadStdout", container_id="tls", len=100, timeout_s=60 * SLOW), 1),
         b"written\n", "output of the container pulled over https")
    c.call("RemoveContainer", container_id="tls", timeout=1, timeout_s=60 * SLOW)


def test_https_other_ca_or_unlisted_refused(t):
    import agentpod
    m = t.module
    c = m.c
    # A listed address whose certificate comes from another CA: the
    # handshake fails, naming the reason.
    e = rpc_error(lambda: c.call("CreateContainer", container_id="x3", container_name="writer",
                                 image=m.pod.image, oci_spec=m.pod.specs["writer"],
                                 storages=[{"driver": "registry", "source": "https://10.0.2.2:%d"
                                            % m.oreg.port}], timeout_s=60 * SLOW))
    t.check(e is not None and "TLS to 10.0.2.2 failed" in e.message
            and "certificate is refused" in e.message and "policy.registries" in e.message,
            "a certificate from another CA refused", e and e.message)
    # An https registry the policy does not list: refused by the policy.
    agentpod.expect_denied(t, lambda: c.call("CreateContainer", container_id="x4",
                                             container_name="writer", image=m.pod.image,
                                             oci_spec=m.pod.specs["writer"],
                                             storages=[{"driver": "registry",
                                                        "source": "https://10.0.2.2:%d" % m.reg.port}],
                                             timeout_s=60 * SLOW),
                           "an https registry the policy does not list")


def test_tampered_layer_refused(t):
    """The registry serves a layer whose bytes differ from its digest: the
    pull fails naming the layer, and nothing runs. Runs last: it breaks the
    registry's copy."""
    m = t.module
    c = m.c
    blobs = glob.glob(os.path.join(m.reg.root, "data", "docker", "registry",
                                   "v2", "blobs", "sha256", "*", "*", "data"))
    layer = max(blobs, key=os.path.getsize)  # the busybox layer, by far the largest blob
    # A well-formed replacement of the same size: the tar with one byte of
    # file data changed, deflated again, padded to the old size with a gzip
    # comment (FCOMMENT), so that only the digest can tell.
    size = os.path.getsize(layer)
    with open(layer, "rb") as f:
        tar = bytearray(gzip.decompress(f.read()))
    tar[len(tar) // 2] ^= 0xff
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = co.compress(bytes(tar)) + co.flush()
    trailer = struct.pack("<II", zlib.crc32(tar), len(tar) & 0xffffffff)
    pad = size - 10 - len(body) - len(trailer) - 1
    t.check(pad >= 0, "the recompressed layer is not larger than the original")
    with open(layer, "wb") as f:
        f.write(b"\x1f\x8b\x08\x10\0\0\0\0\x02\xff" + b"x" * pad + b"\0" + body + trailer)
    t.eq(os.path.getsize(layer), size, "tampered layer size")
    e = rpc_error(lambda: c.call("CreateContainer", container_id="bad", container_name="writer",
                                 image=m.pod.image, oci_spec=m.pod.specs["writer"],
                                 storages=[{"driver": "registry", "source": m.guest_url}],
                                 timeout_s=120 * SLOW))
    t.check(e is not None, "CreateContainer of a tampered image failed")
    digest = "sha256:" + os.path.basename(os.path.dirname(layer))
    t.check(digest in e.message and "does not match its digest" in e.message,
            "the error names the layer and its digest", e.message)
    e2 = rpc_error(lambda: c.call("StartContainer", container_id="bad", timeout_s=30 * SLOW))
    t.check(e2 is not None, "no container `bad` to start")


def test_sealpod_run_registry(t):
    """`sealpod run --registry https://127.0.0.1:PORT --registry-ca CA`:
    the policy is generated from the registry and pins the CA for
    10.0.2.2:PORT, the UVM gets user networking and pulls from
    https://10.0.2.2:PORT. Its own registry and UVM (plain http from the
    UVM is covered above)."""
    import guest
    import images
    pki = images.make_pki(t.path("pki"))
    reg = images.Registry(t, tls=pki)
    reg.push(images.busybox_layout(), images.TAG, "library/busybox:latest")
    yaml = t.path("regpod.yaml")
    with open(yaml, "w") as f:
        f.write(POD)
    r = t.run([t.prog("sealpod"), "run", "--registry", reg.url, "--registry-ca", pki["ca"],
               "--guest-dir", guest.guest_image(), "--accel", "tcg", yaml],
              timeout=300 * SLOW // 2)
    t.eq(r.returncode, 0, "exit code\n" + r.stderr)
    t.check("pulled from the registry into the UVM" in r.stdout, "the container's output",
            r.stdout + r.stderr)
    # A plain-http registry elsewhere is refused before anything boots.
    r = t.run([t.prog("sealpod"), "run", "--registry", "http://192.0.2.1:5000", "--guest-dir",
               guest.guest_image(), "--accel", "tcg", yaml], timeout=120)
    t.check(r.returncode != 0, "plain http to 192.0.2.1 refused", r.stdout)
    t.check("plain http" in r.stderr and "127.0.0.1" in r.stderr, "the refusal says why",
            r.stderr)
