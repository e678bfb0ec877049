"""Test images and a test registry, shared by the test modules that need
an image (image, agent, sealpod run, shim).

    import images
    lay = images.busybox_layout()      # OCI layout dir, built once per build dir
    ref, digest = images.BUSYBOX_TAG, images.manifest_digest(lay, "latest")
    reg = images.Registry(t)           # a docker-registry on 127.0.0.1:<free port>
    reg.push(lay, "latest", "test/busybox:latest")

The busybox image is made with umoci from Debian's busybox-static: layer 1
holds /bin/busybox and its applet links plus /etc files, layer 2 deletes
one file and one directory's contents (real .wh. and opaque whiteouts as
umoci writes them). Built under <build>/test-images/ with a lock, so
parallel test modules build it once.
"""
import fcntl
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import harness

BUSYBOX = "/bin/busybox"
TAG = "latest"
NAME = "docker.io/library/busybox:latest"
APPLETS = ["sh", "ls", "cat", "echo", "true", "false", "sleep", "id", "env", "ps",
           "mkdir", "rm", "touch", "grep", "sed", "head", "wc", "uname", "hostname",
           "mount", "test", "printf", "readlink", "stat", "chmod", "kill", "nproc",
           "wget"]
VERSION = "3"  # bump when the recipe changes


def _run(argv, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        raise harness.Failure("%s failed (%d): %s %s" % (" ".join(argv), r.returncode,
                                                         r.stdout, r.stderr))
    return r.stdout


def _cache_dir():
    d = os.path.join(harness.build_dir(), "test-images")
    os.makedirs(d, exist_ok=True)
    return d


def _build_busybox(dest):
    work = tempfile.mkdtemp(prefix="sp-img-", dir=os.path.dirname(dest))
    try:
        lay = os.path.join(work, "layout")
        bundle = os.path.join(work, "bundle")
        rootless = [] if os.geteuid() == 0 else ["--rootless"]
        _run(["umoci", "init", "--layout", lay])
        _run(["umoci", "new", "--image", lay + ":" + TAG])
        _run(["umoci", "unpack"] + rootless + ["--image", lay + ":" + TAG, bundle])
        root = os.path.join(bundle, "rootfs")
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "var/log", "opt/gone"]:
            os.makedirs(os.path.join(root, d), exist_ok=True)
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
        for a in APPLETS:
            os.symlink("busybox", os.path.join(root, "bin", a))
        with open(os.path.join(root, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        with open(os.path.join(root, "etc", "group"), "w") as f:
            f.write("root:x:0:\nnogroup:x:65534:\n")
        with open(os.path.join(root, "etc", "hostname"), "w") as f:
            f.write("busybox\n")
        with open(os.path.join(root, "etc", "removed-later"), "w") as f:
            f.write("layer 1\n")
        with open(os.path.join(root, "opt", "gone", "file"), "w") as f:
            f.write("layer 1\n")
        os.link(os.path.join(root, "etc", "hostname"), os.path.join(root, "etc", "hostname.link"))
        _run(["umoci", "repack", "--image", lay + ":" + TAG, bundle])
        # Layer 2: a whiteout and an opaque directory.
        shutil.rmtree(bundle)
        _run(["umoci", "unpack"] + rootless + ["--image", lay + ":" + TAG, bundle])
        os.unlink(os.path.join(root, "etc", "removed-later"))
        shutil.rmtree(os.path.join(root, "opt", "gone"))
        os.makedirs(os.path.join(root, "opt", "gone"))
        with open(os.path.join(root, "opt", "gone", "new"), "w") as f:
            f.write("layer 2\n")
        with open(os.path.join(root, "etc", "motd"), "w") as f:
            f.write("sealpod test image\n")
        _run(["umoci", "repack", "--image", lay + ":" + TAG, bundle])
        _run(["umoci", "config", "--image", lay + ":" + TAG,
              "--config.entrypoint", "/bin/sh", "--config.cmd", "-c",
              "--config.cmd", "echo hello from busybox",
              "--config.env", "PATH=/bin", "--config.workingdir", "/root",
              "--config.user", "0:0", "--architecture", "amd64", "--os", "linux"])
        _run(["umoci", "gc", "--layout", lay])
        os.rename(lay, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def busybox_layout():
    """Path of the busybox OCI layout (tag "latest"), built on first use."""
    dest = os.path.join(_cache_dir(), "busybox-v" + VERSION)
    if os.path.exists(os.path.join(dest, "index.json")):
        return dest
    with open(os.path.join(_cache_dir(), ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(dest, "index.json")):
            _build_busybox(dest)
    return dest


def docker_archive(layout, path, name=NAME, tag=TAG):
    """Writes layout:tag as a docker-archive tar (skopeo)."""
    _run(["skopeo", "copy", "-q", "oci:%s:%s" % (layout, tag),
          "docker-archive:%s:%s" % (path, name)])
    return path


def layout_tar(layout, path):
    """A tar of the OCI layout directory (what the guest reads from a disk)."""
    _run(["tar", "-C", layout, "-cf", path, "."])
    return path


def manifest_digest(layout, tag=TAG):
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    for m in idx["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return m["digest"]
    raise harness.Failure("tag %s not in %s" % (tag, layout))


def read_blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest[7:]), "rb") as f:
        return f.read()


def write_blob(layout, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    p = os.path.join(layout, "blobs", "sha256", d[7:])
    with open(p, "wb") as f:
        f.write(data)
    return d


def copy_layout(layout, dest):
    shutil.copytree(layout, dest)
    return dest


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_pki(dest, ips=("127.0.0.1", "10.0.2.2"), name="test", dns=()):
    """A CA and a server certificate it signs for the IP addresses `ips`
    (IP SANs: a UVM reaches this host's 127.0.0.1 as 10.0.2.2). Returns
    {"ca": PEM path, "cert": ..., "key": ...} under dest."""
    os.makedirs(dest, exist_ok=True)
    f = {k: os.path.join(dest, "%s-%s.pem" % (name, k)) for k in ("ca", "cakey", "cert", "key", "csr")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _run(["openssl", "req", "-x509"] + ec + ["-keyout", f["cakey"], "-out", f["ca"],
          "-days", "2", "-subj", "/CN=sealpod %s CA" % name,
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    _run(["openssl", "req"] + ec + ["-keyout", f["key"], "-out", f["csr"],
          "-subj", "/CN=sealpod %s registry" % name])
    ext = os.path.join(dest, "%s-ext.cnf" % name)
    with open(ext, "w") as e:
        e.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\n" % ",".join(["IP:" + i for i in ips] +
                                                        ["DNS:" + d for d in dns]))
    _run(["openssl", "x509", "-req", "-in", f["csr"], "-CA", f["ca"], "-CAkey", f["cakey"],
          "-CAcreateserial", "-days", "2", "-out", f["cert"], "-extfile", ext])
    return f


class Registry:
    """Debian's docker-registry on 127.0.0.1:<free port>, storage in the
    owner's temp dir, stopped with the owner (a harness Test or Module).
    htpasswd: optional {"user": "password"} for basic auth. tls: optional
    make_pki() result; the registry then speaks https with its cert."""

    def __init__(self, owner, htpasswd=None, tls=None):
        self.owner = owner
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.url = ("https://" if tls else "http://") + self.host
        self.user = self.password = None
        root = self.root = tempfile.mkdtemp(prefix="registry-", dir=owner.tmp)
        cfg = ["version: 0.1", "log:", "  level: error", "storage:", "  filesystem:",
               "    rootdirectory: %s" % os.path.join(root, "data"),
               "  delete:", "    enabled: true",
               "http:", "  addr: %s" % self.host]
        if tls:
            cfg += ["  tls:", "    certificate: %s" % tls["cert"], "    key: %s" % tls["key"]]
        if htpasswd:
            import crypt
            hp = os.path.join(root, "htpasswd")
            with open(hp, "w") as f:
                for u, p in htpasswd.items():
                    f.write("%s:%s\n" % (u, crypt.crypt(p, crypt.METHOD_BLOWFISH)))
                    self.user, self.password = u, p
            cfg += ["auth:", "  htpasswd:", "    realm: sealpod-test", "    path: %s" % hp]
        cp = os.path.join(root, "config.yml")
        with open(cp, "w") as f:
            f.write("\n".join(cfg) + "\n")
        self.proc = owner.spawn(["/usr/bin/docker-registry", "serve", cp],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(root, "log"), "w"))
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise harness.Failure("docker-registry exited %s" % self.proc.returncode)
            try:
                ctx = None
                if tls:
                    ctx = ssl.create_default_context(cafile=tls["ca"])
                    ctx.check_hostname = False  # certificates for other IPs too
                urllib.request.urlopen(self.url + "/v2/", timeout=2, context=ctx)
                break
            except urllib.error.HTTPError:
                break  # 401 with auth: it is up
            except OSError:
                time.sleep(0.1)
        else:
            raise harness.Failure("docker-registry did not come up on " + self.host)

    def push(self, layout, tag, repo_tag, fmt=None, compress=None):
        """Pushes layout:tag to <this registry>/repo_tag; returns the
        manifest digest the registry stores."""
        argv = ["skopeo", "copy", "-q", "--dest-tls-verify=false"]
        if self.user:
            argv += ["--dest-creds", "%s:%s" % (self.user, self.password)]
        if fmt:
            argv += ["--format", fmt]
        if compress:
            argv += ["--dest-compress-format", compress, "--dest-compress"]
        dg = os.path.join(self.owner.tmp, "pushed-digest-%d" % time.time_ns())
        argv += ["--digestfile", dg, "oci:%s:%s" % (layout, tag),
                 "docker://%s/%s" % (self.host, repo_tag)]
        _run(argv)
        with open(dg) as f:
            return f.read().strip()


def tar_bytes(entries):
    """A tar from entries: (name, kind, arg) with kind "file" (arg: bytes),
    "dir", "symlink"/"hardlink" (arg: target), or a ready TarInfo."""
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, arg in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            data = None
            if kind == "file":
                data = arg
                ti.size = len(arg)
                ti.mode = 0o644
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = arg
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = arg
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def make_layout(dest, layers, tag=TAG, compress="gzip"):
    """Writes an OCI layout holding one image made of layers (tar bytes);
    returns the manifest digest."""
    import gzip
    os.makedirs(os.path.join(dest, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(dest, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    descs, diff_ids = [], []
    for raw in layers:
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        if compress == "gzip":
            blob, mt = gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
        else:
            blob, mt = raw, "application/vnd.oci.image.layer.v1.tar"
        descs.append({"mediaType": mt, "digest": write_blob(dest, blob), "size": len(blob)})
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "config": {"Cmd": ["/bin/sh"]},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    man = json.dumps({"schemaVersion": 2,
                      "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": write_blob(dest, cfg), "size": len(cfg)},
                      "layers": descs}).encode()
    md = write_blob(dest, man)
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
             "size": len(man), "annotations": {"org.opencontainers.image.ref.name": tag}}]}, f)
    return md


class TokenProxy:
    """A registry front that demands bearer tokens (the distribution token
    flow): /v2/ answers 401 with a Bearer challenge naming /token, which
    issues a token for basic credentials; requests with a valid token are
    forwarded to the real registry."""

    def __init__(self, owner, registry, user, password):
        import base64
        import http.server
        import secrets
        import threading
        proxy = self
        self.issued = set()
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.host
        want = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, body=b"", ctype="application/json", extra=()):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/token"):
                    if self.headers.get("Authorization") != want:
                        return self.reply(401, b'{"errors":[]}')
                    tok = secrets.token_hex(16)
                    proxy.issued.add(tok)
                    return self.reply(200, json.dumps({"token": tok}).encode())
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in proxy.issued:
                    chal = 'Bearer realm="%s/token",service="test",scope="repository:x:pull"' % proxy.url
                    return self.reply(401, b'{"errors":[]}', extra=[("WWW-Authenticate", chal)])
                req = urllib.request.Request(registry.url + self.path)
                if self.headers.get("Accept"):
                    req.add_header("Accept", self.headers["Accept"])
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        self.reply(200, r.read(), r.headers.get("Content-Type", ""))
                except urllib.error.HTTPError as e:
                    self.reply(e.code, e.read())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        owner.cleanup(self.close)

    def tokens_issued(self):
        return len(self.issued)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
