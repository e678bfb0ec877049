"""Builds the Go ttRPC interop peer (main.go next to this file) against
Debian's packaged Go sources, offline, in GOPATH mode, into a temporary
GOPATH. The binary is cached under BUILD/ttrpc-interop/, keyed by the
source, the Go version and the packaged ttrpc version, so the suite and
the benchmark rebuild it only when one of those changes."""
import hashlib
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GOCODE = "/usr/share/gocode"


class Unavailable(Exception):
    """Go or the packaged ttrpc sources are missing."""


def _key():
    h = hashlib.sha256()
    with open(os.path.join(HERE, "main.go"), "rb") as f:
        h.update(f.read())
    try:
        h.update(subprocess.run(["go", "version"], capture_output=True, check=True).stdout)
    except (OSError, subprocess.CalledProcessError) as e:
        raise Unavailable("go is not installed (%s); run scripts/install-deps" % e)
    ttrpc = os.path.join(GOCODE, "src/github.com/containerd/ttrpc")
    if not os.path.isdir(ttrpc):
        raise Unavailable("%s is missing; run scripts/install-deps "
                          "(golang-github-containerd-ttrpc-dev)" % ttrpc)
    for name in sorted(os.listdir(ttrpc)):
        if name.endswith(".go"):
            h.update(name.encode())
            h.update(str(os.stat(os.path.join(ttrpc, name)).st_mtime_ns).encode())
    return h.hexdigest()[:16]


def build(build_dir):
    """Returns the path of the built binary."""
    key = _key()
    out_dir = os.path.join(build_dir, "ttrpc-interop")
    binary = os.path.join(out_dir, "ttrpc-interop-" + key)
    if os.path.exists(binary):
        return binary
    os.makedirs(out_dir, exist_ok=True)
    gopath = tempfile.mkdtemp(prefix="sp-ttrpc-gopath-")
    try:
        pkg = os.path.join(gopath, "src", "sealpod.test", "ttrpc-interop")
        os.makedirs(pkg)
        shutil.copy(os.path.join(HERE, "main.go"), pkg)
        env = dict(os.environ, GO111MODULE="off", GOPATH=gopath + ":" + GOCODE,
                   GOPROXY="off", GOFLAGS="", CGO_ENABLED="0",
                   GOCACHE=os.path.join(out_dir, "gocache"))
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".build-")
        os.close(fd)
        r = subprocess.run(["go", "build", "-o", tmp, "."], cwd=pkg, env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("building the Go ttrpc peer failed:\n" + r.stderr)
        os.rename(tmp, binary)
        # Old builds of other versions are useless now.
        for name in os.listdir(out_dir):
            if name.startswith("ttrpc-interop-") and name != os.path.basename(binary):
                os.unlink(os.path.join(out_dir, name))
    finally:
        shutil.rmtree(gopath, ignore_errors=True)
    return binary


if __name__ == "__main__":
    import sys
    print(build(sys.argv[1] if len(sys.argv) > 1 else
                os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "build")))
