"""containerd-shim-sealpod-v2 with a real containerd (own root, state and
sockets under the test directory) and real UVMs under TCG: `ctr run`
delivers output and exit code, `ctr task exec` runs what the policy
allows and nothing else, kill and delete leave nothing behind.

Boots: one per pod (two here), on one containerd shared by the module."""
import os
import sys

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
  name: ctrpod
  namespace: default
  annotations:
    io.sealpod.policy/logs: "*"
    io.sealpod.policy/exec: '{"sleeper": [["echo", "from-exec"]]}'
spec:
  automountServiceAccountToken: false
  containers:
  - name: exits
    image: %(image)s
    command: ["sh", "-c", "echo out-line; echo err-line >&2; exit 3"]
  - name: sleeper
    image: %(image)s
    command: ["sh", "-c", "echo sleeping; exec sleep 1000"]
""" % {"image": IMAGE}


def setup_module(m):
    shimtest.require_modules(harness)
    containerd.setup(m, POD, IMAGE, vm={"vcpus": 1})


def _diag(t):
    return containerd.diag(t.module, 40)


def _assert_clean(t):
    m = t.module
    left = shimtest.wait_gone(m.tmp, 60)
    t.check(not left, "no shim, QEMU or agent process left", "%r\n%s" % (left, _diag(t)))
    sockdir = os.path.join(m.cd.base, "s")
    t.eq(os.listdir(sockdir) if os.path.isdir(sockdir) else [], [], "shim sockets left")
    run = m.path("run")
    t.eq(os.listdir(run) if os.path.isdir(run) else [], [], "sandbox state left")
    t.eq(shimtest.sanitizer_reports(m.path("shim.log")), "", "sanitizer reports in the shim log")
    r = m.cd.ctr(["task", "ls", "-q"])
    t.eq(r.stdout.strip(), "", "tasks left")


def test_run_delivers_output_and_exit_code(t):
    m = t.module
    r = m.cd.ctr(["run", "--rm", "--runtime", shimtest.RUNTIME,
                  "--annotation", "io.sealpod.policy=" + m.policy,
                  "--annotation", "io.sealpod.container-name=exits",
                  IMAGE, "run1"], check=False, timeout=600)
    if r.returncode != 3 and shimtest.oci_store_denied(r.stderr):
        _assert_clean(t)
        t.skip(shimtest.OCI_STORE_CONFLICT)
    t.eq(r.returncode, 3, "exit code of the container (%s)" % _diag(t))
    t.eq(r.stdout, "out-line\n", "stdout")
    t.check("err-line\n" in r.stderr, "stderr", r.stderr)
    _assert_clean(t)


def test_exec_kill_delete(t):
    m = t.module
    r = m.cd.ctr(["run", "-d", "--runtime", shimtest.RUNTIME,
                  "--annotation", "io.sealpod.policy=" + m.policy,
                  "--annotation", "io.sealpod.container-name=sleeper",
                  IMAGE, "run2"], check=False, timeout=600)
    if r.returncode != 0 and shimtest.oci_store_denied(r.stderr):
        m.cd.ctr(["container", "delete", "run2"], check=False)
        _assert_clean(t)
        t.skip(shimtest.OCI_STORE_CONFLICT)
    t.eq(r.returncode, 0, "ctr run -d: %s\n%s" % (r.stderr, _diag(t)))
    try:
        t.wait_for(lambda: "RUNNING" in m.cd.ctr(["task", "ls"]).stdout, 60, "task RUNNING")
        procs = shimtest.sealpod_processes(m.tmp)
        t.check(any("qemu-system" in c for _, c in procs), "a QEMU runs the pod", procs)
        t.eq(len([1 for _, c in procs if "containerd-shim-sealpod-v2" in c.split(" ")[0]]), 1,
             "one shim for the pod")
        # The policy allows exactly this command...
        r = m.cd.ctr(["task", "exec", "--exec-id", "e1", "run2", "echo", "from-exec"],
                     check=False, timeout=120)
        t.eq((r.returncode, r.stdout), (0, "from-exec\n"), "allowed exec (%s)" % r.stderr)
        # ...and nothing else.
        r = m.cd.ctr(["task", "exec", "--exec-id", "e2", "run2", "cat", "/etc/passwd"],
                     check=False, timeout=120)
        t.check(r.returncode != 0, "an exec the policy does not list fails", r.stdout)
        t.check("denied" in r.stderr, "the error says the policy denied it", r.stderr)
        r = m.cd.ctr(["task", "kill", "-s", "SIGKILL", "run2"], check=False)
        t.eq(r.returncode, 0, "kill: %s" % r.stderr)
        t.wait_for(lambda: "STOPPED" in m.cd.ctr(["task", "ls"]).stdout, 60, "task STOPPED")
        m.cd.ctr(["task", "delete", "run2"])
    finally:
        m.cd.ctr(["task", "delete", "-f", "run2"], check=False)
        m.cd.ctr(["container", "delete", "run2"], check=False)
    _assert_clean(t)


def test_pod_without_policy_is_refused(t):
    m = t.module
    r = m.cd.ctr(["run", "--rm", "--runtime", shimtest.RUNTIME, IMAGE, "nopol"], check=False,
                 timeout=120)
    t.check(r.returncode != 0, "a pod without a policy does not run")
    t.check("io.sealpod.policy" in r.stderr, "the error names the annotation", r.stderr)
    m.cd.ctr(["container", "delete", "nopol"], check=False)
    _assert_clean(t)
