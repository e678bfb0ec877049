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


def have_kernel():
    return os.path.isdir("/boot") and any(f.endswith("-cloud-amd64") for f in os.listdir("/boot"))


def guest_image():
    """Directory of the guest image (vmlinuz, initrd.img, cmdline,
    manifest.json) holding this build's sealpod-agent."""
    agent = harness.prog("sealpod-agent")
    cache = os.path.join(harness.build_dir(), "test-images")
    os.makedirs(cache, exist_ok=True)
    dest = os.path.join(cache, "guest-" + _sha256(agent)[:16])
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
