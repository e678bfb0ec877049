"""Shared helpers for the sealpod-runc tests: a busybox root filesystem,
bundles with config.json, and a runner for sealpod-runc with its own
--root state directory."""
import copy
import json
import os
import shutil
import subprocess

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "ls", "cat", "echo", "true", "false", "sleep", "id", "hostname",
           "ps", "mount", "grep", "head", "tail", "touch", "mkdir", "stat", "wc",
           "env", "pwd", "umask", "domainname", "readlink", "dd", "sysctl", "mknod"]


def make_rootfs(path):
    if not os.path.exists(BUSYBOX):
        return False
    for d in ["bin", "proc", "dev", "sys", "etc", "tmp", "data"]:
        os.makedirs(os.path.join(path, d), exist_ok=True)
    shutil.copy(BUSYBOX, os.path.join(path, "bin", "busybox"))
    for a in APPLETS:
        os.symlink("busybox", os.path.join(path, "bin", a))
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/:/bin/sh\n")
    return True


BASE = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["true"],
        "env": ["PATH=/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                         for k in ["bounding", "effective", "permitted"]},
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "sp",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
    ],
    "linux": {
        "namespaces": [{"type": t} for t in ["pid", "network", "ipc", "uts", "mount"]],
        "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
        "readonlyPaths": ["/proc/sys", "/proc/bus"],
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
    },
}


class Runc:
    def __init__(self, t, rootfs):
        self.t = t
        self.rootfs = rootfs
        self.root = t.path("state")
        self.n = 0
        t.cleanup(self.cleanup_all)

    def cmd(self, *args):
        return [self.t.prog("sealpod-runc"), "--root", self.root] + list(args)

    def run(self, *args, **kw):
        if "create" in args or "-d" in args:
            # The container inherits stdio: pipes would stay open after
            # sealpod-runc exits, so detached runs write to files.
            self.n += 1
            out, err = self.t.path("out%d" % self.n), self.t.path("err%d" % self.n)
            with open(out, "w") as o, open(err, "w") as e:
                r = self.t.run(self.cmd(*args), timeout=kw.pop("timeout", 30),
                               stdout=o, stderr=e, **kw)
            r.stdout, r.stderr = open(out).read(), open(err).read()
            return r
        return self.t.run(self.cmd(*args), timeout=kw.pop("timeout", 30), **kw)

    def bundle(self, args=None, edit=None, name=None):
        self.n += 1
        b = self.t.path(name or "bundle%d" % self.n)
        os.makedirs(b)
        os.symlink(self.rootfs, os.path.join(b, "rootfs"))
        cfg = copy.deepcopy(BASE)
        # Unique per process: the ASan run of the module runs in parallel.
        cfg["linux"]["cgroupsPath"] = "/sp-it/%d-%d" % (os.getpid(), self.n)
        if args:
            cfg["process"]["args"] = args
        if edit:
            edit(cfg)
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        return b

    def state(self, cid):
        r = self.run("state", cid)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def cleanup_all(self):
        if not os.path.isdir(self.root):
            return
        for cid in os.listdir(self.root):
            subprocess.run(self.cmd("delete", "--force", cid), capture_output=True, timeout=30)
        left = os.listdir(self.root)
        if left:
            raise AssertionError("containers left behind: %r" % left)


class RuncCgroup2(Runc):
    """sealpod-runc in a private mount namespace whose /sys/fs/cgroup is
    the cgroup2 hierarchy alone: the engine then runs as on a pure v2
    host (the guest), e.g. device rules as eBPF. On a hybrid host this is
    the same unified hierarchy as /sys/fs/cgroup/unified."""

    WRAP = ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"', "sh"]

    @staticmethod
    def available():
        r = subprocess.run(RuncCgroup2.WRAP + ["true"], capture_output=True)
        return r.returncode == 0

    def cmd(self, *args):
        return self.WRAP + super().cmd(*args)


def cgroup_dirs(path):
    """Every hierarchy's directory for an absolute cgroupsPath."""
    out = []
    for d in os.listdir("/sys/fs/cgroup"):
        p = os.path.join("/sys/fs/cgroup", d) + path
        if os.path.exists(p):
            out.append(p)
    return out
