"""sealpod-runc with a busybox root filesystem: the lifecycle, exec,
namespaces, mounts, devices, cgroups, security settings, terminal, hooks,
and failures that name their cause and leave nothing behind."""
import array
import json
import os
import socket
import threading
import time

from runc_util import Runc, make_rootfs, cgroup_dirs

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


def teardown_module(m):
    # Two test processes (normal and ASan) share the /sp-it parent; the
    # one that made it may not be the last to leave it.
    for d in cgroup_dirs("/sp-it"):
        try:
            os.rmdir(d)
        except OSError:
            pass
