"""The guest image and the UVM launcher, with the real kernel and QEMU
(TCG here): the image builds reproducibly, boots to the agent's ready line
with the agent port found in the guest, and a QEMU killed or a launcher
interrupted during boot leaves nothing behind."""
import hashlib
import json
import os
import re
import signal
import subprocess
import time

import harness

# The launcher and the image builder also run from the ASan/UBSan build;
# the guest's agent is always the normal build's (an ASan PID 1 would not
# fit a small guest).
SANITIZE = True


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def guest_agent():
    p = os.path.join(harness.ROOT, "build", "sealpod-agent")
    if not os.path.exists(p):
        raise harness.Failure("build/sealpod-agent was not built")
    return p


def build_image(t, out, extra_env=None, agent=None, kernel=None, append=None):
    env = dict(os.environ, SOURCE_DATE_EPOCH="0")
    env.update(extra_env or {})
    r = t.run([t.prog("sealpod"), "image", "build", "--output", out,
               "--agent", agent or guest_agent()] + (["--kernel", kernel] if kernel else []) +
              (["--append", append] if append else []),
              env=env, timeout=7200)  # the first use on a machine builds the kernel
    if r.returncode != 0:
        raise harness.Failure("image build failed: %s" % r.stderr)
    return out


def setup_module(m):
    import guest
    if not guest.have_kernel():
        raise harness.Skip("no guest kernel: install linux-source-6.12 (scripts/install-deps)")
    m.image = build_image(m, m.path("guest"))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes only once reaped; check its state.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_image_build_is_reproducible(t):
    first = t.module.image
    second = build_image(t, t.path("again"))
    for name in ("vmlinuz", "initrd.img", "cmdline", "manifest.json", "kernel.config"):
        t.eq(sha256(os.path.join(second, name)), sha256(os.path.join(first, name)),
             "SHA-256 of %s across two builds" % name)
    # The entry time is part of the bytes: another SOURCE_DATE_EPOCH gives
    # another initrd (so the equality above is not vacuous).
    third = build_image(t, t.path("later"), {"SOURCE_DATE_EPOCH": "1700000000"})
    t.check(sha256(os.path.join(third, "initrd.img")) !=
            sha256(os.path.join(first, "initrd.img")), "mtime changes the initrd")


def test_manifest_lists_sources(t):
    with open(os.path.join(t.module.image, "manifest.json")) as f:
        m = json.load(f)
    t.eq(m["initrd"]["sha256"], sha256(os.path.join(t.module.image, "initrd.img")),
         "initrd hash in manifest")
    t.eq(m["cmdline_sha256"], hashlib.sha256(m["cmdline"].encode()).hexdigest(),
         "cmdline hash")
    files = {f["path"]: f for f in m["files"]}
    t.eq(files["/sbin/sealpod-agent"]["origin"], "sealpod", "agent origin")
    t.check(files["/sbin/sealpod-agent"].get("stripped"), "agent stripped")
    t.eq(files["/init"]["target"], "/sbin/sealpod-agent", "/init")
    libc = files.get("/lib/x86_64-linux-gnu/libc.so.6")
    t.check(libc and libc["package"].startswith("libc6") and libc["version"],
            "libc with package and version", libc)
    # sealpod's own kernel: built from Debian's linux-source with the
    # repository's fragment; everything built in, so no modules.
    k = m["kernel"]
    t.eq(k["origin"], "sealpod", "kernel origin")
    t.eq(k["source_package"], "linux-source-6.12", "kernel source package")
    ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "linux-source-6.12"],
                         stdout=subprocess.PIPE, text=True).stdout
    t.eq(k["source_version"], ver, "kernel source version")
    t.check(k["release"].endswith("-sealpod"), "kernel release", k["release"])
    with open(os.path.join(harness.ROOT, "kernel", "sealpod.config"), "rb") as f:
        t.eq(k["fragment_sha256"], hashlib.sha256(f.read()).hexdigest(), "fragment hash")
    cfg = os.path.join(t.module.image, "kernel.config")
    t.eq(k["config_sha256"], sha256(cfg), "config in the image is the one built")
    t.eq(k["config_file_sha256"], sha256(cfg), "config hash")
    with open(cfg) as f:
        text = f.read()
    for opt in ("CONFIG_SEV_GUEST=y", "CONFIG_TSM_REPORTS=y", "CONFIG_CGROUP_BPF=y",
                "CONFIG_SECCOMP_FILTER=y", "CONFIG_VIRTIO_CONSOLE=y",
                "# CONFIG_MODULES is not set"):
        t.check(opt in text.splitlines(), "kernel config has " + opt)
    t.eq(k["modules_supported"], False, "no loadable modules")
    t.eq(m["modules"], [], "no modules requested")
    t.check(not any(p.endswith((".ko", ".ko.xz", ".ko.zst")) for p in files),
            "no module files in the initrd")
    t.eq(files["/etc/sealpod/modules"]["size"], 0, "empty module list")
    t.check(not any(p.startswith("/bin/") for p in files), "no shell in production",
            [p for p in files if p.startswith("/bin/")])
    size = os.path.getsize(os.path.join(t.module.image, "initrd.img"))
    t.check(size <= 8 << 20, "initrd at most 8 MiB", size)


def test_boot_to_agent_ready(t):
    run_dir = t.path("run")
    r = t.run([t.prog("sealpod"), "vm", "boot", "--image", t.module.image,
               "--run-dir", run_dir, "--timeout", "120"], timeout=180)
    t.eq(r.returncode, 0, "exit code (stderr: %s)" % r.stderr)
    info = json.loads(r.stdout.strip().splitlines()[-1])
    t.eq(info["status"], "running", "QMP status when ready")
    line = info["ready_line"]
    t.check(line.startswith("sealpod-agent: ready"), "ready line", line)
    # The guest found the agent's virtio-serial port by its name.
    t.check(re.search(r"port=/dev/vport\d+p\d+", line), "agent port found", line)
    t.eq(int(re.search(r"modules=(\d+)", line).group(1)), 0, "no modules to load: " + line)
    pid = int(re.search(r"qemu pid (\d+)", r.stderr).group(1))
    t.check(not pid_alive(pid), "QEMU gone after stop")
    t.check(not os.path.exists(run_dir), "run directory removed", os.listdir(t.tmp))


def test_unknown_kernel_arguments_do_not_stop_the_agent(t):
    """Words of the command line the kernel does not know reach PID 1 as
    arguments (`nokaslr` is the decompressor's only); the agent says it
    ignores them instead of exiting, which would panic the guest."""
    img = build_image(t, t.path("guest-append"), append="nokaslr --no-such-option")
    con = t.path("console.log")
    r = t.run([t.prog("sealpod"), "vm", "boot", "--image", img, "--console-log", con,
               "--timeout", "120"], timeout=180)
    t.eq(r.returncode, 0, "boots to ready (stderr: %s)" % r.stderr)
    with open(con, errors="replace") as f:
        text = f.read()
    t.check("ignoring `nokaslr` from the kernel command line" in text, "says what it ignores",
            text[-2000:])


def test_debian_kernel_still_boots(t):
    # --kernel debian: Debian's cloud kernel with its modules, loaded by
    # PID 1 from the initrd (the kmod path).
    import guest
    if not guest.have_debian_kernel():
        raise harness.Skip("no Debian cloud kernel in /boot")
    img = build_image(t, t.path("debian"), kernel="debian")
    with open(os.path.join(img, "manifest.json")) as f:
        m = json.load(f)
    t.check(m["kernel"]["package"].startswith("linux-image-"), "kernel package", m["kernel"])
    t.eq(m["kernel"]["origin"], "host", "kernel origin")
    mods = {x["name"]: x["status"] for x in m["modules"]}
    t.eq(mods["virtio_console"], "module", "virtio_console packed")
    run_dir = t.path("run")
    r = t.run([t.prog("sealpod"), "vm", "boot", "--image", img,
               "--run-dir", run_dir, "--timeout", "120"], timeout=180)
    t.eq(r.returncode, 0, "exit code (stderr: %s)" % r.stderr)
    line = json.loads(r.stdout.strip().splitlines()[-1])["ready_line"]
    t.check(int(re.search(r"modules=(\d+)", line).group(1)) > 0, "modules loaded", line)
    t.check(re.search(r"port=/dev/vport\d+p\d+", line), "agent port found", line)


def start_boot(t, run_dir):
    p = t.spawn([t.prog("sealpod"), "vm", "boot", "--image", t.module.image,
                 "--run-dir", run_dir, "--timeout", "120"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in p.stderr:  # log lines (e.g. the KVM probe) may come first
        seen.append(line)
        m = re.search(r"qemu pid (\d+)", line)
        if m:
            return p, int(m.group(1))
    raise harness.Failure("launcher never named the QEMU pid: %s" % "".join(seen))


def test_qemu_killed_during_boot(t):
    run_dir = t.path("run")
    p, qpid = start_boot(t, run_dir)
    time.sleep(0.3)  # firmware or kernel, well before the agent
    os.kill(qpid, signal.SIGKILL)
    out, err = p.communicate(timeout=60)
    t.eq(p.returncode, 1, "exit code")
    t.check("killed by signal 9" in err and "before the guest agent was ready" in err,
            "error says what happened", err)
    t.check("last lines of the guest console" in err, "error shows the console", err)
    t.check(not pid_alive(qpid), "no QEMU left")
    t.check(not os.path.exists(run_dir), "no run directory (sockets) left",
            os.listdir(t.tmp))


def test_launcher_interrupted_during_boot(t):
    run_dir = t.path("run")
    p, qpid = start_boot(t, run_dir)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    t.eq(p.returncode, 1, "exit code")
    t.check("interrupted" in err, "error says interrupted", err)
    t.check(not pid_alive(qpid), "no QEMU left")
    t.check(not os.path.exists(run_dir), "no run directory left")


def test_agent_exit_during_boot(t):
    # An /init that exits at once: the kernel panics, QEMU stops, and the
    # launcher says so instead of waiting for its timeout.
    img = build_image(t, t.path("bad"), agent="/bin/true")
    run_dir = t.path("run")
    start = time.time()
    r = t.run([t.prog("sealpod"), "vm", "boot", "--image", img, "--run-dir", run_dir,
               "--timeout", "120"], timeout=180)
    t.eq(r.returncode, 1, "exit code")
    t.check(time.time() - start < 100, "did not wait for the timeout")
    t.check("QEMU exited with status" in r.stderr and
            "before the guest agent was ready" in r.stderr, "says QEMU ended", r.stderr)
    t.check("Attempted to kill init" in r.stderr, "console tail shows the panic", r.stderr)
    t.check(not os.path.exists(run_dir), "no run directory left")


def test_missing_image_is_named(t):
    r = t.run([t.prog("sealpod"), "vm", "boot", "--image", t.path("nope")])
    t.eq(r.returncode, 1, "exit code")
    t.check(t.path("nope") in r.stderr and "sealpod image build" in r.stderr,
            "error names the directory and the fix", r.stderr)


def test_image_build_bad_input(t):
    out = t.path("out")
    r = t.run([t.prog("sealpod"), "image", "build", "--output", out,
               "--agent", t.path("no-agent")])
    t.eq(r.returncode, 1, "exit code")
    t.check("no-agent" in r.stderr, "error names the agent path", r.stderr)
    t.check(not os.path.exists(out), "no output directory left behind")
    r = t.run([t.prog("sealpod"), "image", "build", "--compress", "brotli"])
    t.eq(r.returncode, 2, "usage error")
    t.check("brotli" in r.stderr, "names the bad value", r.stderr)
