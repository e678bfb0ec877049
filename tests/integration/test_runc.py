"""sealpod-runc with a busybox root filesystem: the lifecycle, exec,
namespaces, mounts, devices, cgroups, security settings, terminal, hooks,
and failures that name their cause and leave nothing behind."""
import array
import json
import os
import socket
import threading
import time

from runc_util import Runc, RuncCgroup2, make_rootfs, cgroup_dirs

NEEDS_ROOT = True
SANITIZE = True


def setup_module(m):
    m.rootfs = m.path("rootfs")
    if not make_rootfs(m.rootfs):
        from harness import Skip
        raise Skip("busybox-static is not installed")


def rc(t):
    return Runc(t, t.module.rootfs)


def test_run_exit_code_and_output(t):
    r = rc(t)
    b = r.bundle(["sh", "-c", "echo hello; exit 3"])
    p = r.run("run", "--bundle", b, "c1")
    t.eq(p.returncode, 3, "exit code of the container")
    t.eq(p.stdout, "hello\n", "stdout")
    t.check(not os.path.exists(os.path.join(r.root, "c1")), "run removes the container")


def test_lifecycle_create_start_kill_delete(t):
    r = rc(t)
    cg = "/sp-it/life%d" % os.getpid()
    b = r.bundle(["sleep", "60"], edit=lambda c: c["linux"].update(cgroupsPath=cg))
    pidf = t.path("pid")
    p = r.run("create", "-b", b, "--pid-file", pidf, "life")
    t.eq(p.returncode, 0, "create: " + p.stderr)
    st = r.state("life")
    t.eq(st["status"], "created", "status after create")
    t.eq(int(open(pidf).read()), st["pid"], "pid file")
    t.eq(st["bundle"], os.path.realpath(b), "bundle in state")
    t.check(cgroup_dirs(cg), "cgroup exists")
    t.check("life" in r.run("list", "-q").stdout, "list")
    t.eq(r.run("start", "life").returncode, 0, "start")
    t.eq(r.state("life")["status"], "running", "status after start")
    t.check(r.run("start", "life").returncode != 0, "a second start fails")
    ps = json.loads(r.run("ps", "--format", "json", "life").stdout)
    t.eq(ps, [st["pid"]], "ps")
    t.check(r.run("delete", "life").returncode != 0, "delete of a running container needs --force")
    t.eq(r.run("kill", "life", "KILL").returncode, 0, "kill")
    t.wait_for(lambda: r.state("life")["status"] == "stopped", 5, "stopped")
    t.check(r.run("kill", "life", "TERM").returncode != 0, "kill of a stopped container fails")
    t.eq(r.run("delete", "life").returncode, 0, "delete")
    t.check(r.state("life") is None, "state after delete")
    t.eq(cgroup_dirs(cg), [], "cgroups removed")
    t.eq(r.run("delete", "--force", "life").returncode, 0, "delete --force of a missing one")


def test_exec_env_cwd_user_and_process_file(t):
    r = rc(t)
    b = r.bundle(["sleep", "60"])
    t.eq(r.run("run", "-d", "-b", b, "ex").returncode, 0, "run -d")

    def execed():
        try:
            with open("/proc/%d/cmdline" % r.state("ex")["pid"], "rb") as f:
                return f.read().startswith(b"sleep")
        except (OSError, TypeError, KeyError):
            return False
    # run -d returns once the container started; its init may not have
    # exec'd sleep yet on a loaded machine (pid 1's cmdline is read below).
    t.wait_for(execed, 10, "the container's init to exec sleep")
    p = r.run("exec", "-e", "FOO=bar", "--cwd", "/proc", "-u", "1000:1001", "ex",
              "sh", "-c", "echo $FOO; pwd; id -u; id -g; exit 7")
    t.eq(p.returncode, 7, "exec exit code")
    t.eq(p.stdout.split(), ["bar", "/proc", "1000", "1001"], "env, cwd, user")
    proc = {"args": ["sh", "-c", "echo $$ > /tmp/x; cat /proc/1/cmdline | head -c 5"],
            "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
    pf = t.path("process.json")
    json.dump(proc, open(pf, "w"))
    p = r.run("exec", "--process", pf, "ex")
    t.eq(p.returncode, 0, "exec -p: " + p.stderr)
    t.eq(p.stdout, "sleep", "exec joined the pid namespace (pid 1 is sleep)")
    pidf = t.path("exec.pid")
    p = r.run("exec", "-d", "--pid-file", pidf, "ex", "sleep", "30")
    t.eq(p.returncode, 0, "exec -d")
    pid = int(open(pidf).read())
    t.check(pid in json.loads(r.run("ps", "-f", "json", "ex").stdout), "exec'd process in ps")
    p = r.run("exec", "ex", "nonexistent-program")
    t.check(p.returncode != 0 and "nonexistent-program" in p.stderr, "missing executable named",
            p.stderr)
    t.eq(r.run("kill", "--all", "ex", "9").returncode, 0, "kill --all")
    t.wait_for(lambda: r.state("ex")["status"] == "stopped", 5, "stopped")
    t.eq(r.run("delete", "ex").returncode, 0, "delete")


def test_pod_shares_namespaces_by_path(t):
    r = rc(t)

    def pod(c):
        c["hostname"] = "podhost"
        c["domainname"] = "poddomain"
    t.eq(r.run("run", "-d", "-b", r.bundle(["sleep", "60"], pod), "pause").returncode, 0, "pause")
    pid = r.state("pause")["pid"]

    def member(c):
        c.pop("hostname")
        c["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid"}] + [
            {"type": n, "path": "/proc/%d/ns/%s" % (pid, f)}
            for n, f in [("network", "net"), ("ipc", "ipc"), ("uts", "uts")]]
    b = r.bundle(["sh", "-c", "hostname; cat /proc/sys/kernel/domainname; readlink /proc/self/ns/net"], member)
    p = r.run("run", "-b", b, "member")
    t.eq(p.returncode, 0, "member: " + p.stderr)
    out = p.stdout.split()
    t.eq(out[:2], ["podhost", "poddomain"], "uts namespace shared")
    t.eq(out[2], os.readlink("/proc/%d/ns/net" % pid), "network namespace shared")


def test_user_namespace_mappings(t):
    r = rc(t)
    # The mapped root must reach the bundle and the rootfs.
    os.chmod(t.tmp, 0o755)
    os.chmod(t.module.tmp, 0o755)

    def userns(c):
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 1000}]
    b = r.bundle(["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map"], userns)
    p = r.run("run", "-b", b, "uns")
    t.eq(p.returncode, 0, "run: " + p.stderr)
    words = p.stdout.split()
    t.eq(words, ["0", "0", "200000", "1000", "0", "300000", "1000"], "mappings")


def test_mounts_options_and_paths(t):
    r = rc(t)
    host = t.path("hostdir")
    os.makedirs(host)
    open(os.path.join(host, "f"), "w").write("from-host")

    def mounts(c):
        c["mounts"] += [
            {"destination": "/data/ro", "type": "bind", "source": host, "options": ["rbind", "ro"]},
            {"destination": "/data/t", "type": "tmpfs", "source": "tmpfs",
             "options": ["noexec", "nosuid", "size=1m", "mode=700", "private"]},
            {"destination": "/data/newdir/deep", "type": "tmpfs", "source": "tmpfs"},
        ]
        c["linux"]["maskedPaths"].append("/data/ro/f")
        c["linux"]["readonlyPaths"].append("/data/t")
        c["linux"]["rootfsPropagation"] = "rprivate"
    script = ("grep ' /data/' /proc/self/mountinfo; stat -c %a /data/t; "
              "cat /data/ro/f; echo masked=$?; touch /data/ro/x 2>/dev/null || echo ro-ok; "
              "touch /data/t/x 2>/dev/null || echo t-ro-ok; ls /sys/firmware | wc -l")
    p = r.run("run", "-b", r.bundle(["sh", "-c", script], mounts), "mnt")
    t.eq(p.returncode, 0, "run: " + p.stderr)
    out = p.stdout
    t.check("/data/ro ro," in out or " /data/ro ro" in out, "bind is read-only", out)
    t.check("size=1024k" in out and "mode=700" in out, "tmpfs data options", out)
    t.check("noexec" in out.split("/data/t ")[1].split("\n")[0], "noexec", out)
    t.check("/data/newdir/deep" in out, "destination created with parents", out)
    t.check("from-host" not in out and "masked=0" in out, "masked file reads empty", out)
    t.check("ro-ok" in out and "t-ro-ok" in out, "read-only paths", out)
    t.check(out.strip().endswith("0"), "/sys/firmware masked", out)


def test_devices(t):
    r = rc(t)

    def dev(c):
        c["linux"]["devices"] = [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
                                  "fileMode": 0o640, "uid": 0, "gid": 34}]
        c["linux"]["resources"]["devices"].append(
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    p = r.run("run", "-b", r.bundle(["sh", "-c", "ls -ln /dev/mynull /dev/zero; echo x > /dev/mynull && echo w-ok; readlink /dev/fd"], dev), "dev")
    t.eq(p.returncode, 0, "run: " + p.stderr)
    lines = p.stdout.splitlines()
    f = lines[0].split()
    t.check(f[0] == "crw-r-----" and f[2:6] == ["0", "34", "1,", "3"],
            "device node mode/owner/numbers", lines[0])
    t.check(lines[1].startswith("crw-rw-rw-"), "default device", lines[1])
    t.eq(lines[2:], ["w-ok", "/proc/self/fd"], "device usable, /dev/fd link")


def test_cgroup_limits_and_stats(t):
    r = rc(t)
    path = "/sp-it/cg%d" % os.getpid()

    def res(c):
        c["linux"]["cgroupsPath"] = path
        c["linux"]["resources"].update({
            "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 64 << 20},
            "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 42},
        })
    t.eq(r.run("run", "-d", "-b", r.bundle(["sleep", "60"], res), "cg").returncode, 0, "run")
    v1 = os.path.isdir("/sys/fs/cgroup/memory")

    def rd(ctrl, f):
        base = "/sys/fs/cgroup/%s%s" % (ctrl, path) if v1 else "/sys/fs/cgroup" + path
        return open(os.path.join(base, f)).read().strip()
    if v1:
        t.eq(rd("memory", "memory.limit_in_bytes"), str(64 << 20), "memory limit")
        t.eq(rd("memory", "memory.soft_limit_in_bytes"), str(32 << 20), "reservation")
        t.eq(rd("cpu", "cpu.shares"), "512", "cpu shares")
        t.eq(rd("cpu", "cpu.cfs_quota_us"), "20000", "cpu quota")
        t.eq(rd("cpuset", "cpuset.cpus"), "0", "cpuset")
        t.eq(rd("pids", "pids.max"), "42", "pids")
    else:
        t.eq(rd("", "memory.max"), str(64 << 20), "memory limit")
        t.eq(rd("", "cpu.max"), "20000 100000", "cpu quota")
        t.eq(rd("", "pids.max"), "42", "pids")
    ev = json.loads(r.run("events", "--stats", "cg").stdout)["data"]
    t.eq(ev["pids"]["current"], 1, "stats: pids")
    t.eq(ev["pids"]["limit"], 42, "stats: pids limit")
    t.check(ev["memory"]["usage"]["usage"] > 0, "stats: memory usage", ev)
    t.check(ev["cpu"]["usage"]["total"] > 0, "stats: cpu usage", ev)
    t.eq(r.run("delete", "-f", "cg").returncode, 0, "delete")
    t.eq(cgroup_dirs(path), [], "cgroup removed")


def test_oom_kill_is_counted(t):
    r = rc(t)
    path = "/sp-it/oom%d" % os.getpid()

    def res(c):
        c["linux"]["cgroupsPath"] = path
        c["linux"]["resources"]["memory"] = {"limit": 16 << 20, "swap": 16 << 20}
    # tail keeps a line without newline in memory: it grows until killed.
    b = r.bundle(["sh", "-c", "head -c 200000000 /dev/zero | tail -c 100000000 > /dev/null; sleep 30"], res)
    t.eq(r.run("run", "-d", "-b", b, "oom").returncode, 0, "run")
    t.wait_for(lambda: json.loads(r.run("events", "--stats", "oom").stdout)["data"]["memory"]["oomKills"] > 0,
               20, "an OOM kill in the stats")


def test_security_settings(t):
    r = rc(t)

    def sec(c):
        p = c["process"]
        p["capabilities"] = {k: ["CAP_CHOWN", "CAP_KILL"] for k in
                             ["bounding", "effective", "permitted", "inheritable", "ambient"]}
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]
        p["user"] = {"uid": 0, "gid": 0, "umask": 0o077, "additionalGids": [5, 6]}
        p["oomScoreAdj"] = 500
        c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
        c["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    script = ("grep -E '^(CapEff|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; ulimit -n; ulimit -Hn; "
              "umask; cat /proc/self/oom_score_adj; id -G; cat /proc/sys/net/ipv4/ip_forward; "
              "mkdir /tmp/d 2>&1; true")
    p = r.run("run", "-b", r.bundle(["sh", "-c", script], sec), "sec")
    t.eq(p.returncode, 0, "run: " + p.stderr)
    out = p.stdout
    t.check("CapEff:\t0000000000000021" in out, "effective caps (CHOWN|KILL)", out)
    t.check("CapAmb:\t0000000000000021" in out, "ambient caps", out)
    t.check("NoNewPrivs:\t1" in out and "Seccomp:\t2" in out, "nnp and seccomp filter", out)
    lines = out.splitlines()
    t.eq(lines[4:8], ["123", "456", "0077", "500"], "rlimits, umask, oom_score_adj")
    t.eq(lines[8].split(), ["0", "5", "6"], "additional gids")
    t.eq(lines[9], "1", "sysctl")
    t.check("Permission denied" in out, "seccomp errnoRet EACCES", out)


def test_absent_capabilities_are_empty(t):
    """Issue 19.1 at the engine: a process without process.capabilities, or
    without one of its sets, gets that set EMPTY (as runc does), never
    the runtime's own capabilities."""
    r = rc(t)
    script = "grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb):' /proc/self/status"

    def nocaps(c):
        c["process"].pop("capabilities", None)
        c["process"]["user"] = {"uid": 0, "gid": 0}

    def only_bounding(c):
        c["process"]["capabilities"] = {"bounding": ["CAP_KILL"]}
        c["process"]["user"] = {"uid": 0, "gid": 0}

    p = r.run("run", "-b", r.bundle(["sh", "-c", script], nocaps), "nocaps")
    t.eq(p.returncode, 0, "run: " + p.stderr)
    for cap in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
        t.check("%s:\t0000000000000000" % cap in p.stdout, cap + " empty without capabilities",
                p.stdout)
    p = r.run("run", "-b", r.bundle(["sh", "-c", script], only_bounding), "bnd")
    t.eq(p.returncode, 0, "run: " + p.stderr)
    t.check("CapBnd:\t0000000000000020" in p.stdout, "bounding = KILL", p.stdout)
    for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        t.check("%s:\t0000000000000000" % cap in p.stdout, cap + " empty when its set is absent",
                p.stdout)


def recv_fd(sock):
    fds = array.array("i")
    msg, anc, _, _ = sock.recvmsg(64, socket.CMSG_SPACE(4))
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[:4])
    return fds[0]


def test_terminal_console_socket(t):
    r = rc(t)
    path = t.path("console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got = {}

    def accept():
        conn, _ = srv.accept()
        got["fd"] = recv_fd(conn)
        conn.close()
    th = threading.Thread(target=accept)
    th.start()

    def term(c):
        c["process"]["terminal"] = True
        c["process"]["consoleSize"] = {"height": 30, "width": 100}
    b = r.bundle(["sh", "-c", "stty size; tty; sleep 1"], term)
    p = r.run("create", "-b", b, "--console-socket", path, "tty")
    t.eq(p.returncode, 0, "create: " + p.stderr)
    th.join(5)
    t.check("fd" in got, "received the pty master")
    r.run("start", "tty")
    buf = b""
    deadline = time.time() + 5
    while time.time() < deadline and b"/dev/" not in buf:
        try:
            buf += os.read(got["fd"], 4096)
        except OSError:
            break
    os.close(got["fd"])
    srv.close()
    t.check(b"30 100" in buf, "console size", buf)
    t.check(b"/dev/console" in buf or b"/dev/pts/" in buf, "stdio is the terminal", buf)


HOOK = """#!/bin/sh
echo "$1 $(cat)" >> %s
exit %s
"""


def test_hooks_run_with_state(t):
    r = rc(t)
    log = t.path("hooks.log")
    hook = t.path("hook.sh")
    open(hook, "w").write(HOOK % (log, "0"))
    os.chmod(hook, 0o755)

    def hooks(c):
        c["hooks"] = {k: [{"path": hook, "args": ["hook.sh", k]}] for k in
                      ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]}
    t.eq(r.run("run", "-b", r.bundle(["true"], hooks), "hk").returncode, 0, "run")
    lines = open(log).read().splitlines()
    names = [l.split()[0] for l in lines]
    t.eq(names, ["prestart", "createRuntime", "createContainer", "poststart", "poststop"], "order")
    st = json.loads(lines[0].split(" ", 1)[1])
    t.eq(st["id"], "hk", "state on stdin")
    t.check(st["pid"] > 0, "pid in the state")


def test_failures_name_the_cause_and_leave_nothing(t):
    r = rc(t)
    bad = t.path("bad.sh")
    open(bad, "w").write(HOOK % (t.path("x"), "3"))
    os.chmod(bad, 0o755)
    path = "/sp-it/fail%d" % os.getpid()
    cases = [
        ("mounts[6].destination", lambda c: c["mounts"].append(
            {"destination": "rel", "type": "tmpfs", "source": "tmpfs"})),
        ("process.args", lambda c: c["process"].pop("args")),
        ("linux.namespaces[5].type", lambda c: c["linux"]["namespaces"].append({"type": "bogus"})),
        ("process.capabilities.bounding[0]", lambda c: c["process"]["capabilities"].update(
            bounding=["CAP_BOGUS"])),
        ("linux.seccomp.defaultAction", lambda c: c["linux"].update(
            seccomp={"defaultAction": "SCMP_ACT_BOGUS"})),
        ("process.args[0]", lambda c: c["process"].update(args=["no-such-binary"])),
        ("hooks.prestart[0]", lambda c: c.update(hooks={"prestart": [{"path": bad}]})),
        ("mounts[6]", lambda c: c["mounts"].append(
            {"destination": "/x", "type": "bind", "source": "/nonexistent/src", "options": ["bind"]})),
        ("linux.resources.memory.swap", lambda c: c["linux"]["resources"].update(
            memory={"limit": 100 << 20, "swap": 50 << 20})),
    ]
    for i, (field, edit) in enumerate(cases):
        def e2(c, edit=edit):
            c["linux"]["cgroupsPath"] = path
            edit(c)
        b = r.bundle(["true"], e2)
        p = r.run("create", "-b", b, "f%d" % i)
        t.check(p.returncode != 0, "create fails for " + field)
        t.check(field in p.stderr, "error names %s" % field, p.stderr)
        t.check(not os.path.exists(os.path.join(r.root, "f%d" % i)), "no state left: " + field)
        t.eq(cgroup_dirs(path), [], "no cgroup left: " + field)
    r2 = r.run("state", "nope")
    t.check(r2.returncode != 0 and "nope" in r2.stderr, "unknown container named", r2.stderr)
    t.check(r.run("create", "-b", b, "../evil").returncode != 0, "bad id refused")


def test_cli_features_log_and_flags(t):
    r = rc(t)
    f = json.loads(r.run("features").stdout)
    t.eq(f["ociVersionMin"], "1.0.0", "features version")
    t.check("SCMP_ACT_ERRNO" in f["linux"]["seccomp"]["actions"], "seccomp actions")
    t.check("CAP_SYS_ADMIN" in f["linux"]["capabilities"], "capabilities")
    log = t.path("log.json")
    p = t.run([t.prog("sealpod-runc"), "--root", r.root, "--log", log, "--log-format", "json",
               "--systemd-cgroup", "--debug", "state", "missing"])
    t.check(p.returncode != 0, "state of a missing container fails")
    t.check("--systemd-cgroup" in p.stderr, "systemd-cgroup warning", p.stderr)
    entries = [json.loads(l) for l in open(log).read().splitlines()]
    t.check(any(e.get("level") == "error" and "missing" in e.get("msg", "") for e in entries),
            "json error in the log", entries)


def test_update_flags_and_resources_file(t):
    r = rc(t)
    path = "/sp-it/up%d" % os.getpid()

    def res(c):
        c["linux"]["cgroupsPath"] = path
        c["linux"]["resources"].update({"memory": {"limit": 64 << 20}, "pids": {"limit": 42}})
    t.eq(r.run("run", "-d", "-b", r.bundle(["sleep", "60"], res), "up").returncode, 0, "run")
    p = r.run("update", "--memory", "32m", "--memory-swap", "48M", "--cpu-shares", "256",
              "--cpu-quota", "30000", "--cpu-period", "100000", "--cpuset-cpus", "0",
              "--cpuset-mems", "0", "--pids-limit", "10", "up")
    t.eq(p.returncode, 0, "update with flags: " + p.stderr)
    v1 = os.path.isdir("/sys/fs/cgroup/memory")

    def rd(ctrl, f):
        base = "/sys/fs/cgroup/%s%s" % (ctrl, path) if v1 else "/sys/fs/cgroup" + path
        return open(os.path.join(base, f)).read().strip()
    if v1:
        t.eq(rd("memory", "memory.limit_in_bytes"), str(32 << 20), "memory limit")
        if os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
            t.eq(rd("memory", "memory.memsw.limit_in_bytes"), str(48 << 20), "memory+swap")
        t.eq(rd("cpu", "cpu.shares"), "256", "cpu shares")
        t.eq(rd("cpu", "cpu.cfs_quota_us"), "30000", "cpu quota")
        t.eq(rd("cpuset", "cpuset.cpus"), "0", "cpuset")
    else:
        t.eq(rd("", "memory.max"), str(32 << 20), "memory limit")
        t.eq(rd("", "cpu.max"), "30000 100000", "cpu quota")
    ev = json.loads(r.run("events", "--stats", "up").stdout)["data"]
    t.eq(ev["pids"]["limit"], 10, "pids limit in the stats")
    # containerd's shim: the linux.resources object on stdin.
    p = r.run("update", "-r", "-", "up", input=json.dumps({"pids": {"limit": 20}}))
    t.eq(p.returncode, 0, "update -r -: " + p.stderr)
    t.eq(json.loads(r.run("events", "--stats", "up").stdout)["data"]["pids"]["limit"], 20,
         "pids limit from stdin")
    rf = t.path("res.json")
    json.dump({"pids": {"limit": 30}, "cpu": {"shares": 128}}, open(rf, "w"))
    t.eq(r.run("update", "--resources", rf, "up").returncode, 0, "update --resources FILE")
    t.eq(json.loads(r.run("events", "--stats", "up").stdout)["data"]["pids"]["limit"], 30,
         "pids limit from a file")
    if v1:
        t.eq(rd("cpu", "cpu.shares"), "128", "cpu shares from a file")
    # Bad input names what was wrong and changes nothing.
    p = r.run("update", "--memory", "12q", "up")
    t.check(p.returncode != 0 and "--memory" in p.stderr, "a bad size is named", p.stderr)
    p = r.run("update", "-r", "-", "up", input='{"pids": {"limit": "x"}}')
    t.check(p.returncode != 0 and "linux.resources.pids.limit" in p.stderr,
            "a bad resources file names the field", p.stderr)
    p = r.run("update", "-r", rf, "--pids-limit", "5", "up")
    t.check(p.returncode != 0 and "--resources" in p.stderr, "file and flags together", p.stderr)
    p = r.run("update", "up")
    t.check(p.returncode != 0 and "--memory" in p.stderr, "no limits given", p.stderr)
    t.eq(json.loads(r.run("events", "--stats", "up").stdout)["data"]["pids"]["limit"], 30,
         "limit unchanged by the failures")
    t.check(r.run("update", "--pids-limit", "5", "nosuch").returncode != 0, "missing container")
    t.eq(r.run("kill", "up", "KILL").returncode, 0, "kill")
    t.wait_for(lambda: r.state("up")["status"] == "stopped", 5, "stopped")
    p = r.run("update", "--pids-limit", "5", "up")
    t.check(p.returncode != 0 and "stopped" in p.stderr, "a stopped container is refused", p.stderr)
    t.eq(r.run("delete", "up").returncode, 0, "delete")
    t.eq(cgroup_dirs(path), [], "cgroup removed")


def check_pause_resume(t, r, name):
    """A counter loop stops while paused and goes on after resume."""
    b = r.bundle(["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 0.02; done"])
    t.eq(r.run("run", "-d", "-b", b, name).returncode, 0, "run")
    pid = r.state(name)["pid"]
    counter = "/proc/%d/root/tmp/c" % pid

    def count():
        try:
            return int(open(counter).read() or 0)
        except (OSError, ValueError):
            return 0
    t.wait_for(lambda: count() > 2, 10, "the counter runs")
    t.check(r.run("resume", name).returncode != 0, "resume of a running container fails")
    p = r.run("pause", name)
    t.eq(p.returncode, 0, "pause: " + p.stderr)
    t.eq(r.state(name)["status"], "paused", "state after pause")
    t.check(r.run("pause", name).returncode != 0, "a second pause fails")
    p = r.run("exec", name, "true")
    t.check(p.returncode != 0 and "paused" in p.stderr, "exec into a paused container", p.stderr)
    c1 = count()
    time.sleep(0.4)
    t.eq(count(), c1, "no progress while paused")
    t.eq(r.run("list", "--format", "json").returncode, 0, "list")
    t.check(any(c["id"] == name and c["status"] == "paused"
                for c in json.loads(r.run("list", "--format", "json").stdout)), "list: paused")
    p = r.run("resume", name)
    t.eq(p.returncode, 0, "resume: " + p.stderr)
    t.eq(r.state(name)["status"], "running", "state after resume")
    t.wait_for(lambda: count() > c1, 5, "progress after resume")
    # A paused container can still be removed, leaving nothing.
    t.eq(r.run("pause", name).returncode, 0, "pause again")
    p = r.run("delete", "--force", name)
    t.eq(p.returncode, 0, "delete --force of a paused container: " + p.stderr)
    t.check(r.state(name) is None, "gone")
    t.check(not os.path.exists("/proc/%d" % pid) or
            open("/proc/%d/stat" % pid).read().split()[2] == "Z", "init killed")


def test_pause_resume_freezer(t):
    check_pause_resume(t, rc(t), "pz")


DEV_SCRIPT = """
mknod /dev/ok c 4095 0 && echo mknod-ok
mknod /dev/no c 4095 1 || echo mknod-denied
mknod /dev/blk b 7 0 || echo blk-denied
echo x > /dev/null && echo null-ok
cat /dev/ok
"""


def check_device_rules(t, r, name):
    """Containerd's shape (deny all, then allow): an allowed device opens
    (no driver behind 4095:0, so ENXIO rather than EPERM), everything
    else is refused at mknod or open; update replaces the rules."""
    def dev(c):
        c["process"]["capabilities"] = {k: ["CAP_MKNOD", "CAP_KILL"]
                                        for k in ["bounding", "effective", "permitted"]}
        c["linux"]["resources"]["devices"] = [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 4095, "minor": 0, "access": "rwm"}]
    t.eq(r.run("run", "-d", "-b", r.bundle(["sleep", "60"], dev), name).returncode, 0, "run")
    p = r.run("exec", name, "sh", "-c", DEV_SCRIPT)
    out = p.stdout + p.stderr
    for want in ["mknod-ok", "mknod-denied", "blk-denied", "null-ok"]:
        t.check(want in out, want, out)
    t.check("can't create '/dev/no': Operation not permitted" in out or
            "/dev/no: Operation not permitted" in out, "mknod of a denied device: EPERM", out)
    t.check("No such device or address" in out, "an allowed device opens (ENXIO: no driver)", out)
    # Update: now only 4095:1 is allowed (the program is replaced).
    rules = {"devices": [{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 4095, "minor": 1, "access": "rwm"}]}
    p = r.run("update", "-r", "-", name, input=json.dumps(rules))
    t.eq(p.returncode, 0, "update devices: " + p.stderr)
    p = r.run("exec", name, "sh", "-c", "cat /dev/ok; mknod /dev/no c 4095 1 && echo no-ok; "
              "cat /dev/no; echo y > /dev/null && echo null-ok")
    out = p.stdout + p.stderr
    t.check("'/dev/ok': Operation not permitted" in out, "the old allowed device is denied", out)
    t.check("no-ok" in out and "No such device or address" in out, "the new one is allowed", out)
    t.check("null-ok" in out, "the standard devices stay allowed", out)
    t.eq(r.run("delete", "--force", name).returncode, 0, "delete")


def test_device_rules_cgroup_v1(t):
    if not os.path.isdir("/sys/fs/cgroup/devices"):
        t.skip("no v1 devices controller here")
    check_device_rules(t, rc(t), "dv1")


def test_device_rules_and_freeze_cgroup_v2(t):
    if not RuncCgroup2.available():
        t.skip("cannot mount a cgroup2 hierarchy in a private mount namespace")
    r = RuncCgroup2(t, t.module.rootfs)
    check_device_rules(t, r, "dv2")
    # Without any rules the program still denies all but the standard
    # devices (the guest default).
    def caps(c):
        c["process"]["capabilities"] = {k: ["CAP_MKNOD"]
                                        for k in ["bounding", "effective", "permitted"]}
        del c["linux"]["resources"]
    p = r.run("run", "-b", r.bundle(["sh", "-c", "mknod /dev/sda b 8 0 || echo sda-denied; "
                                     "echo > /dev/null && echo null-ok"], caps), "dv2b")
    t.check("sda-denied" in p.stdout and "null-ok" in p.stdout, "default rules", p.stdout + p.stderr)
    check_pause_resume(t, r, "pz2")
    t.eq(cgroup_dirs("/sp-it/%d-1" % os.getpid()), [], "cgroups removed")


def teardown_module(m):
    # Two test processes (normal and ASan) share the /sp-it parent; the
    # one that made it may not be the last to leave it.
    for d in cgroup_dirs("/sp-it"):
        try:
            os.rmdir(d)
        except OSError:
            pass
