"""Faults under containerd-shim-sealpod-v2, with a real containerd and real
UVMs under TCG: QEMU killed while a container runs, the shim killed, and
containerd restarted while a pod runs. Each time containerd must learn the
truth (exit 137, or the task still running), and nothing may be left.

Boots: three (one per test), on one containerd shared by the module."""
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cri"))

import containerd  # noqa: E402
import harness  # noqa: E402
import shimtest  # noqa: E402

NEEDS_ROOT = True
SANITIZE = True
IMAGE = "docker.io/library/sp-busybox:1"

POD = """apiVersion: v1
kind: Pod
metadata:
  name: faultpod
  namespace: default
  annotations:
    io.sealpod.policy/logs: "*"
    io.sealpod.policy/exec: '{"sleeper": [["echo", "still-here"]]}'
spec:
  automountServiceAccountToken: false
  containers:
  - name: sleeper
    image: %(image)s
    command: ["sh", "-c", "echo sleeping; exec sleep 1000"]
""" % {"image": IMAGE}


def setup_module(m):
    shimtest.require_modules(harness)
    containerd.setup(m, POD, IMAGE, vm={"vcpus": 1})


def _diag(t):
    return containerd.diag(t.module, 40)


def _start(t, cid):
    m = t.module
    r = m.cd.ctr(["run", "-d", "--runtime", shimtest.RUNTIME,
                  "--annotation", "io.sealpod.policy=" + m.policy,
                  "--annotation", "io.sealpod.container-name=sleeper",
                  IMAGE, cid], check=False, timeout=600)
    t.eq(r.returncode, 0, "ctr run -d %s: %s\n%s" % (cid, r.stderr, _diag(t)))
    t.wait_for(lambda: _status(m, cid) == "RUNNING", 120, "task %s RUNNING" % cid)


def _status(m, cid):
    for line in m.cd.ctr(["task", "ls"], check=False).stdout.splitlines()[1:]:
        f = line.split()
        if f and f[0] == cid:
            return f[-1]
    return None


def _pods_processes(m, kind):
    return [(p, c) for p, c in shimtest.sealpod_processes(m.tmp)
            if kind in c.split(" ")[0]]


def _cleanup(t, cid):
    m = t.module
    m.cd.ctr(["task", "delete", "-f", cid], check=False)
    m.cd.ctr(["container", "delete", cid], check=False)


def _assert_clean(t, cid):
    m = t.module
    left = shimtest.wait_gone(m.tmp, 60)
    t.check(not left, "no shim, QEMU or agent process left", "%r\n%s" % (left, _diag(t)))
    run = m.path(os.path.join("run", cid))
    # A killed shim's state goes with containerd's cleanup, which runs the
    # shim binary's `delete` when it notices: asynchronously. (It once
    # stayed behind under load; delete now logs what it did, shown here.)
    try:
        t.wait_for(lambda: not os.path.exists(run), 60,
                   "the sandbox state of %s to be removed" % cid)
    except harness.Failure as e:
        left = [os.path.join(d, f) for d, _, fs in os.walk(run) for f in fs + [""]]
        raise harness.Failure("%s: %r\n%s" % (e, left, _diag(t)))
    t.eq(shimtest.sanitizer_reports(m.path("shim.log")), "", "sanitizer reports in the shim log")
    t.eq(m.cd.ctr(["task", "ls", "-q"]).stdout.strip(), "", "tasks left")


def test_qemu_killed_while_a_container_runs(t):
    """The UVM dies under a running container: `ctr run` (which waits on
    the task) gets exit status 137, the task is STOPPED, the shim's log
    says what died, and delete leaves nothing."""
    m = t.module
    cid = "qkill"
    t.cleanup(lambda: _cleanup(t, cid))
    fg = t.spawn(["ctr", "--address", m.cd.sock, "--namespace", "default", "run",
                  "--runtime", shimtest.RUNTIME,
                  "--annotation", "io.sealpod.policy=" + m.policy,
                  "--annotation", "io.sealpod.container-name=sleeper", IMAGE, cid],
                 env=m.cd.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t.wait_for(lambda: _status(m, cid) == "RUNNING" or fg.poll() is not None, 600,
               "task RUNNING")
    t.eq(_status(m, cid), "RUNNING", "the task runs (%s)" % _diag(t))
    qemu = _pods_processes(m, "qemu-system")
    t.eq(len(qemu), 1, "one QEMU runs the pod")
    os.kill(qemu[0][0], signal.SIGKILL)
    try:
        out, err = fg.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        raise harness.Failure("ctr run did not return after QEMU died\n" + _diag(t))
    t.eq(fg.returncode, 137, "ctr run's exit status after the UVM died (%s)" % err)
    # ctr run deletes the task it waited for; nothing may still run.
    t.check(_status(m, cid) in (None, "STOPPED"), "containerd shows no running task",
            _status(m, cid))
    log = open(m.path("shim.log"), errors="replace").read()
    t.check("qemu" in log.lower() and ("died" in log or "exited" in log or "killed" in log),
            "the shim's log names what died", log[-3000:])
    m.cd.ctr(["task", "delete", cid], check=False)
    r = m.cd.ctr(["container", "delete", cid], check=False)
    t.eq(r.returncode, 0, "container delete after the UVM died: %s" % r.stderr)
    _assert_clean(t, cid)


def test_shim_killed_takes_qemu_with_it(t):
    """SIGKILL to the shim: QEMU goes too, containerd's delete cleans up,
    and the same container id can be created again."""
    m = t.module
    cid = "shimkill"
    t.cleanup(lambda: _cleanup(t, cid))
    _start(t, cid)
    shims = _pods_processes(m, "containerd-shim-sealpod-v2")
    t.eq(len(shims), 1, "one shim for the pod")
    os.kill(shims[0][0], signal.SIGKILL)
    t.wait_for(lambda: not _pods_processes(m, "qemu-system"), 60,
               "QEMU exits when its shim is killed")
    t.wait_for(lambda: _status(m, cid) in (None, "STOPPED", "UNKNOWN"), 60,
               "containerd no longer sees a running task")
    m.cd.ctr(["task", "delete", "-f", cid], check=False)
    r = m.cd.ctr(["container", "delete", cid], check=False)
    t.eq(r.returncode, 0, "container delete after the shim died: %s" % r.stderr)
    _assert_clean(t, cid)
    # The pod can be created again.
    _start(t, cid)
    r = m.cd.ctr(["task", "kill", "-s", "SIGKILL", cid], check=False)
    t.eq(r.returncode, 0, "kill: %s" % r.stderr)
    t.wait_for(lambda: _status(m, cid) == "STOPPED", 60, "task STOPPED")
    _cleanup(t, cid)
    _assert_clean(t, cid)


def test_containerd_restart_keeps_pods(t):
    """containerd restarted while a pod runs: the shim and its UVM survive,
    containerd reconnects, and exec, kill and wait still work."""
    m = t.module
    cid = "cdrestart"
    t.cleanup(lambda: _cleanup(t, cid))
    _start(t, cid)
    before = sorted(p for p, _ in shimtest.sealpod_processes(m.tmp))
    m.cd.stop()
    time.sleep(1)
    after = sorted(p for p, _ in shimtest.sealpod_processes(m.tmp))
    t.eq(after, before, "the shim and QEMU outlive containerd")
    m.cd.start(m.spawn)
    t.wait_for(lambda: _status(m, cid) == "RUNNING", 60,
               "containerd sees the task RUNNING again (%s)" % _diag(t))
    r = m.cd.ctr(["task", "exec", "--exec-id", "e1", cid, "echo", "still-here"],
                 check=False, timeout=120)
    t.eq((r.returncode, r.stdout), (0, "still-here\n"), "exec after the restart (%s)" % r.stderr)
    r = m.cd.ctr(["task", "kill", "-s", "SIGKILL", cid], check=False)
    t.eq(r.returncode, 0, "kill after the restart: %s" % r.stderr)
    t.wait_for(lambda: _status(m, cid) == "STOPPED", 60, "task STOPPED")
    _cleanup(t, cid)
    _assert_clean(t, cid)
