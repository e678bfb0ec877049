"""The guest image (`sealpod image build`), built once per build directory
and agent binary, with a lock, for the test modules that boot UVMs."""
import fcntl
import hashlib
import os
import shutil
import subprocess

import harness


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


BUILD_KERNEL = os.path.join(harness.ROOT, "scripts", "build-kernel")


def have_kernel():
    """sealpod's kernel can be built (Debian's linux-source is installed)
    or is cached; `sealpod image build` uses it by default."""
    return os.path.exists("/usr/src/linux-source-6.12.tar.xz") or os.path.exists(
        os.path.join(kernel_dir(), "bzImage"))


def have_debian_kernel():
    return os.path.isdir("/boot") and any(f.endswith("-cloud-amd64") for f in os.listdir("/boot"))


def kernel_dir():
    """The kernel cache entry scripts/build-kernel uses for this tree's
    configuration (built on first use by `sealpod image build`)."""
    r = subprocess.run([BUILD_KERNEL, "--print-dir"], stdout=subprocess.PIPE, text=True,
                       check=True)
    return r.stdout.strip()


def guest_image():
    """Directory of the guest image (vmlinuz, initrd.img, cmdline,
    manifest.json) holding this build's sealpod-agent."""
    agent = harness.prog("sealpod-agent")
    cache = os.path.join(harness.build_dir(), "test-images")
    os.makedirs(cache, exist_ok=True)
    # The kernel's cache entry names its source version and config hash.
    kkey = hashlib.sha256(kernel_dir().encode()).hexdigest()[:8]
    dest = os.path.join(cache, "guest-" + _sha256(agent)[:16] + "-" + kkey)
    if os.path.exists(os.path.join(dest, "manifest.json")):
        return dest
    with open(os.path.join(cache, ".guest.lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(dest, "manifest.json")):
            return dest
        # Older images (other agent binaries) go: they are ~20 MB each.
        for d in os.listdir(cache):
            if d.startswith("guest-"):
                shutil.rmtree(os.path.join(cache, d), ignore_errors=True)
        tmp = dest + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        env = dict(os.environ, SOURCE_DATE_EPOCH="0")
        r = subprocess.run([harness.prog("sealpod"), "image", "build", "--output", tmp,
                            "--agent", agent], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise harness.Failure("sealpod image build: " + r.stderr)
        os.rename(tmp, dest)
    return dest
