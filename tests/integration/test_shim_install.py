"""deploy/install.sh against containerd configuration files in a temporary
root: the runtime block goes in once (a second run changes nothing), real
containerd parses the result and sees the sealpod runtime, --uninstall
restores the file byte for byte, and configurations it must not touch are
refused with a message that says why."""
import json
import os
import shutil
import stat
import subprocess

import harness

ROOT = harness.ROOT
DEBIAN_CONFIG = """version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"""


def _artifacts(t):
    art = t.path("artifacts")
    os.makedirs(os.path.join(art, "bin"))
    os.makedirs(os.path.join(art, "guest"))
    for f in ("install.sh", "containerd-config.toml"):
        shutil.copy(os.path.join(ROOT, "deploy", f), art)
    shutil.copy(t.prog("containerd-shim-sealpod-v2"), os.path.join(art, "bin"))
    for name, data in (("vmlinuz", "kernel"), ("initrd.img", "initrd"),
                       ("cmdline", "console=ttyS0 quiet\n")):
        with open(os.path.join(art, "guest", name), "w") as f:
            f.write(data)
    return art


def _install(t, art, root, *args):
    return t.run(["sh", os.path.join(art, "install.sh"), "--root", root] + list(args))


def _read(p):
    with open(p) as f:
        return f.read()


def test_install_is_idempotent_and_reversible(t):
    art = _artifacts(t)
    root = t.path("root")
    cfg = os.path.join(root, "etc", "containerd", "config.toml")
    os.makedirs(os.path.dirname(cfg))
    with open(cfg, "w") as f:
        f.write(DEBIAN_CONFIG)
    r = _install(t, art, root)
    t.eq(r.returncode, 0, "install: " + r.stderr)
    once = _read(cfg)
    t.check(once.startswith(DEBIAN_CONFIG), "the original configuration is kept", once)
    t.eq(once.count('runtime_type = "io.containerd.sealpod.v2"'), 1, "one runtime block")

    r = _install(t, art, root)
    t.eq(r.returncode, 0, "second install: " + r.stderr)
    t.eq(_read(cfg), once, "a second install changes nothing")
    t.check("already" in r.stdout, "it says so", r.stdout)

    # containerd itself reads the result.
    r = t.run(["containerd", "--config", cfg, "config", "dump"])
    t.eq(r.returncode, 0, "containerd parses the configuration: " + r.stderr)
    t.check('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sealpod]' in r.stdout,
            "containerd sees the runtime", r.stdout[-3000:])
    t.check('runtime_type = "io.containerd.sealpod.v2"' in r.stdout, "runtime type")
    t.check('pod_annotations = ["io.sealpod.*"]' in r.stdout, "policy annotation passes CRI")

    shim = os.path.join(root, "usr", "local", "bin", "containerd-shim-sealpod-v2")
    t.check(os.stat(shim).st_mode & stat.S_IXUSR, "the shim is installed executable")
    t.eq(_read(os.path.join(root, "usr", "share", "sealpod", "initrd.img")), "initrd",
         "the guest image is installed")
    with open(os.path.join(root, "etc", "sealpod", "runtime.json")) as f:
        rc = json.load(f)
    t.eq(rc["kernel_cmdline"], "console=ttyS0 quiet", "runtime.json takes the guest cmdline")

    r = _install(t, art, root, "--uninstall")
    t.eq(r.returncode, 0, "uninstall: " + r.stderr)
    t.eq(_read(cfg), DEBIAN_CONFIG, "uninstall restores the configuration byte for byte")
    t.check(not os.path.exists(shim), "uninstall removes the shim")
    t.eq(sorted(os.listdir(os.path.dirname(cfg))), ["config.toml"], "no backups or temp files left")


def test_install_creates_a_missing_configuration(t):
    art = _artifacts(t)
    root = t.path("root")
    r = _install(t, art, root)
    t.eq(r.returncode, 0, "install: " + r.stderr)
    cfg = os.path.join(root, "etc", "containerd", "config.toml")
    t.check(_read(cfg).startswith("version = 2\n"), "a version 2 configuration", _read(cfg))
    r = t.run(["containerd", "--config", cfg, "config", "dump"])
    t.check(r.returncode == 0 and "io.containerd.sealpod.v2" in r.stdout, "containerd reads it",
            r.stderr)


def test_install_refuses_what_it_must_not_touch(t):
    art = _artifacts(t)
    for name, text, why in (
            ("v1", 'version = 1\n[plugins.cri]\n', "version 2"),
            ("noversion", '[plugins."io.containerd.grpc.v1.cri"]\n', "version 2"),
            ("foreign", DEBIAN_CONFIG + '\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sealpod]\n'
                        '  runtime_type = "io.containerd.other.v2"\n', "outside the sealpod markers")):
        root = t.path("root-" + name)
        cfg = os.path.join(root, "etc", "containerd", "config.toml")
        os.makedirs(os.path.dirname(cfg))
        with open(cfg, "w") as f:
            f.write(text)
        r = _install(t, art, root)
        t.check(r.returncode != 0, name + ": refused")
        t.check(why in r.stderr and cfg in r.stderr, name + ": the message says why and names the file",
                r.stderr)
        t.eq(_read(cfg), text, name + ": the file is untouched")
        t.eq(sorted(os.listdir(os.path.dirname(cfg))), ["config.toml"], name + ": nothing left")


def test_install_rejects_bad_arguments(t):
    art = _artifacts(t)
    r = _install(t, art, t.path("root"), "--restart", "reboot")
    t.eq(r.returncode, 1, "exit code")
    t.check("--restart" in r.stderr and "reboot" in r.stderr, "names the flag and value", r.stderr)
    r = t.run(["sh", os.path.join(art, "install.sh"), "--artifacts", t.path("nowhere"),
               "--root", t.path("root2")])
    t.check(r.returncode != 0 and "containerd-shim-sealpod-v2 is missing" in r.stderr,
            "missing artifacts are named", r.stderr)
