"""Host-pulled images (issue 15): the shim offers the guest exactly the
blobs containerd's content store holds for a container's image, on a
read-only disk, with no image_store or registry in the runtime
configuration; the guest verifies them against the policy's digest.

- `ctr image import` + `ctr run --runtime io.containerd.sealpod.v2` runs
  the imported image;
- a layer blob tampered with in containerd's content store is refused in
  the guest, naming the image and the layer's digest;
- through CRI: PullImage from Debian's docker-registry on 127.0.0.1, then a
  confidential pod runs that image.

A real containerd (own root under the test directory), real UVMs under
TCG: three boots."""
import os
import subprocess
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cri"))

import containerd  # noqa: E402
import harness  # noqa: E402
import shimtest  # noqa: E402

NEEDS_ROOT = True
SANITIZE = True
IMAGE = "docker.io/library/sp-busybox:1"
NS = "k8s.io"

POD = """apiVersion: v1
kind: Pod
metadata:
  name: hostpulled
  namespace: default
  annotations:
    io.sealpod.policy/logs: "*"
spec:
  automountServiceAccountToken: false
  containers:
  - name: hello
    image: %(image)s
    command: ["sh", "-c", "echo host-pulled-ok; exit 3"]
"""


def setup_module(m):
    shimtest.require_modules(harness)
    content = os.path.join(m.path("cd"), "root", "io.containerd.content.v1.content")
    m.content = content
    m.disks = m.path("disks")
    # Only the guest image: no image_store, no registry.
    containerd.setup(m, POD % {"image": IMAGE}, IMAGE, ns=NS, vm={
        "image_store": None, "content_store": content, "image_disk_dir": m.disks})


def _diag(t):
    return containerd.diag(t.module, 60)


def _assert_clean(t):
    m = t.module
    left = shimtest.wait_gone(m.tmp, 60)
    t.check(not left, "no shim, QEMU or agent process left", "%r\n%s" % (left, _diag(t)))
    run = m.path("run")
    t.eq(os.listdir(run) if os.path.isdir(run) else [], [], "sandbox state left")
    t.eq(os.listdir(m.disks) if os.path.isdir(m.disks) else [], [], "image disks left")
    t.eq(shimtest.sanitizer_reports(m.path("shim.log")), "", "sanitizer reports in the shim log")


def _layer_digest(m):
    import json
    with open(os.path.join(m.layout, "index.json")) as f:
        mdig = json.load(f)["manifests"][0]["digest"]
    with open(os.path.join(m.layout, "blobs", "sha256", mdig[7:])) as f:
        return mdig, json.load(f)["layers"][0]["digest"]


def test_runtime_config_names_only_the_guest_image(t):
    import json
    with open(t.module.runtime_config) as f:
        cfg = json.load(f)
    t.eq(cfg.get("image_store"), None, "no image_store")
    t.check("registry" not in cfg, "no registry", cfg)


def test_ctr_run_imported_image(t):
    m = t.module
    r = m.cd.ctr(["run", "--rm", "--runtime", shimtest.RUNTIME,
                  "--annotation", "io.sealpod.policy=" + m.policy,
                  IMAGE, "hp1"], ns=NS, check=False, timeout=600)
    t.eq(r.returncode, 3, "exit code of the container (%s)\n%s" % (r.stderr, _diag(t)))
    t.eq(r.stdout, "host-pulled-ok\n", "stdout")
    with open(m.path("shim.log"), errors="replace") as f:
        log = f.read()
    t.check("/dev/vda" not in log or "image_store" not in log, "no image store used", "")
    _assert_clean(t)


def test_tampered_blob_in_content_store_refused(t):
    m = t.module
    mdig, ldig = _layer_digest(m)
    blob = os.path.join(m.content, "blobs", "sha256", ldig[7:])
    with open(blob, "rb") as f:
        good = f.read()
    # Same size, other bytes, still a gzip stream that inflates to the
    # same tar: only the header's MTIME field differs, so nothing but the
    # digest can tell.
    bad = bytearray(good)
    t.eq(bytes(bad[:2]), b"\x1f\x8b", "the layer is gzip")
    bad[4] ^= 0x01
    os.chmod(blob, 0o644)
    with open(blob, "wb") as f:
        f.write(bad)
    try:
        r = m.cd.ctr(["run", "--rm", "--runtime", shimtest.RUNTIME,
                      "--annotation", "io.sealpod.policy=" + m.policy,
                      IMAGE, "hp2"], ns=NS, check=False, timeout=600)
    finally:
        with open(blob, "wb") as f:
            f.write(good)
        os.chmod(blob, 0o444)
        m.cd.ctr(["task", "delete", "-f", "hp2"], ns=NS, check=False)
        m.cd.ctr(["container", "delete", "hp2"], ns=NS, check=False)
    t.check(r.returncode != 0, "a tampered layer does not run", r.stdout)
    t.check("host-pulled-ok" not in r.stdout, "the container never ran", r.stdout)
    t.check("does not match its digest" in r.stderr, "the guest's digest check refused it",
            r.stderr + _diag(t))
    t.check(ldig in r.stderr, "the error names the layer's digest", r.stderr)
    t.check("sp-busybox" in r.stderr, "the error names the image", r.stderr)
    _assert_clean(t)


def test_cri_pull_from_registry_then_pod(t):
    import cri
    import images
    m = t.module
    reg = images.Registry(t)
    repo = "sp/busybox:2"
    tag = IMAGE.rsplit(":", 1)[1]
    pushed = reg.push(m.layout, tag, repo)
    ref = "%s/%s" % (reg.host, repo)
    pod = POD % {"image": ref}
    src = t.path("pod.yaml")
    with open(src, "w") as f:
        f.write(pod)
    out = src + ".gen"
    r = subprocess.run([os.path.join(harness.build_dir(), "sealpod"), "policy", "gen", src,
                        "--registry", reg.url, "--output", out],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    t.eq(r.returncode, 0, "policy gen: %s" % r.stderr)
    import yaml
    with open(out) as f:
        gen = [d for d in yaml.safe_load_all(f) if d][0]
    policy = gen["metadata"]["annotations"]["io.sealpod.policy"]

    ims = cri.ImageService(m.cd.sock)
    t.cleanup(ims.close)
    try:
        image_ref = ims.pull_image(ref)
    except Exception as e:
        raise harness.Failure("PullImage %s: %s\n%s" % (ref, e, m.cd.log_tail(30)))
    t.check(image_ref, "PullImage returned the image", image_ref)
    t.check(os.path.exists(os.path.join(m.content, "blobs", "sha256", pushed[7:])),
            "containerd holds the manifest the registry serves", pushed)

    rs = cri.RuntimeService(m.cd.sock)
    t.cleanup(rs.close)
    logdir = t.path("podlogs")
    os.makedirs(logdir)
    sandbox_config = cri.msg(
        "PodSandboxConfig",
        metadata=cri.msg("PodSandboxMetadata", name="hostpulled", namespace="default",
                         uid=str(uuid.uuid4()), attempt=0),
        hostname="hostpulled", log_directory=logdir,
        annotations={"io.sealpod.policy": policy},
        linux=cri.msg("LinuxPodSandboxConfig", security_context=cri.msg(
            "LinuxSandboxSecurityContext",
            namespace_options=cri.msg("NamespaceOption", network=cri.NODE))))
    sid = None
    try:
        try:
            sid = rs.run_pod_sandbox(sandbox_config, "sealpod")
        except Exception as e:
            raise harness.Failure("RunPodSandbox: %s\n%s" % (e, _diag(t)))
        cfg = cri.msg("ContainerConfig", metadata=cri.msg("ContainerMetadata", name="hello"),
                      image=cri.msg("ImageSpec", image=ref), log_path="hello.log")
        try:
            cid = rs.create_container(sid, cfg, sandbox_config)
            rs.start_container(cid)
        except Exception as e:
            raise harness.Failure("container: %s\n%s" % (e, _diag(t)))
        path = os.path.join(logdir, "hello.log")

        def logged():
            try:
                with open(path) as f:
                    return "host-pulled-ok" in f.read()
            except OSError:
                return False
        t.wait_for(logged, 300, "the container's output in its CRI log")
        t.wait_for(lambda: rs.container_status(cid).state == cri.CONTAINER_EXITED, 60,
                   "container exited")
        t.eq(rs.container_status(cid).exit_code, 3, "exit code")
        rs.stop_pod_sandbox(sid)
        rs.remove_pod_sandbox(sid)
        sid = None
    finally:
        if sid:
            try:
                rs.stop_pod_sandbox(sid)
                rs.remove_pod_sandbox(sid)
            except Exception:
                pass
    _assert_clean(t)


def test_image_not_in_content_store_is_named(t):
    """A policy pinning an image containerd never pulled: the container's
    Create fails on the host, naming the image, the missing blob, the
    content store and what to do; nothing is left behind."""
    import images
    m = t.module
    lay = images.busybox_layout()
    digest = images.manifest_digest(lay)
    policy = shimtest.policy_for(harness.build_dir(), POD % {"image": images.NAME}, lay, t.tmp)
    r = m.cd.ctr(["run", "--rm", "--runtime", shimtest.RUNTIME,
                  "--annotation", "io.sealpod.policy=" + policy,
                  IMAGE, "hp3"], ns=NS, check=False, timeout=600)
    m.cd.ctr(["task", "delete", "-f", "hp3"], ns=NS, check=False)
    m.cd.ctr(["container", "delete", "hp3"], ns=NS, check=False)
    t.check(r.returncode != 0, "refused", r.stdout)
    t.check("content store" in r.stderr and digest in r.stderr and "busybox" in r.stderr,
            "names the content store, the blob and the image", r.stderr)
    t.check("pull the image" in r.stderr, "says what to do", r.stderr)
    _assert_clean(t)
