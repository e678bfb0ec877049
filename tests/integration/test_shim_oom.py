"""Out of memory and a killed UVM in a confidential pod, through containerd's CRI with real
UVMs under TCG: a container that exceeds its memory limit is OOM-killed in
the guest and CRI reports it as OOMKilled (kubelet's reason), while the
agent and the pod's other container go on; a container with no limit that
eats the whole guest is killed by the guest kernel (the agent is exempt),
with a clear reason, not a hang.

One boot (the pod); the pod uses the host network."""
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
NS = "k8s.io"
LIMIT = 48 << 20

# `tail` keeps the last lines of /dev/zero, which has none: it buffers
# everything it reads until the kernel stops it.
POD = """apiVersion: v1
kind: Pod
metadata:
  name: oompod
  namespace: default
  annotations:
    io.sealpod.policy/logs: "*"
    io.sealpod.policy/exec: '{"calm": [["echo", "still-here"]]}'
spec:
  automountServiceAccountToken: false
  containers:
  - name: hog
    image: %(image)s
    command: ["sh", "-c", "echo hog-start; tail /dev/zero"]
    resources:
      limits: {memory: 48Mi}
  - name: greedy
    image: %(image)s
    command: ["sh", "-c", "echo greedy-start; tail /dev/zero"]
  - name: calm
    image: %(image)s
    command: ["sh", "-c", "echo calm-start; exec sleep 1000"]
""" % {"image": IMAGE}


def setup_module(m):
    shimtest.require_modules(harness)
    try:
        import cri  # noqa: F401
    except ImportError as e:
        raise harness.Skip("CRI client needs python3-grpcio and python3-protobuf: %s" % e)
    containerd.setup(m, POD, IMAGE, ns=NS, vm={"memory_mib": 384})


def _diag(t):
    return containerd.diag(t.module, 80)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _container(cri, name, limit=None):
    res = None
    if limit:
        res = cri.msg("LinuxContainerResources", memory_limit_in_bytes=limit)
    kw = {"linux": cri.msg("LinuxContainerConfig", resources=res)} if res else {}
    return cri.msg("ContainerConfig", metadata=cri.msg("ContainerMetadata", name=name),
                   image=cri.msg("ImageSpec", image=IMAGE), log_path=name + ".log", **kw)


def _sandbox_config(cri, m, logdir):
    return cri.host_pod_config("oompod", logdir, {"io.sealpod.policy": m.policy})


def test_oom_killed_container_is_reported_and_the_pod_survives(t):
    import cri
    m = t.module
    rs = cri.RuntimeService(m.cd.sock)
    t.cleanup(rs.close)
    logdir = m.path("podlogs")
    os.makedirs(logdir)
    sandbox_config = _sandbox_config(cri, m, logdir)
    sid = rs.run_pod_sandbox(sandbox_config, "sealpod")
    try:
        ids = {}
        for name, limit in (("calm", None), ("hog", LIMIT)):
            try:
                ids[name] = rs.create_container(sid, _container(cri, name, limit),
                                                sandbox_config)
                rs.start_container(ids[name])
            except Exception as e:
                raise harness.Failure("container %s: %s\n%s" % (name, e, _diag(t)))
        t.wait_for(lambda: rs.container_status(ids["hog"]).state == cri.CONTAINER_EXITED,
                   240, "hog to be stopped at its limit (%s)" % _diag(t))
        st = rs.container_status(ids["hog"])
        t.eq(st.reason, "OOMKilled", "CRI's reason for the hog (exit %d, %s)" % (
            st.exit_code, st.message))
        t.eq(st.exit_code, 137, "the hog was killed")
        t.check("hog-start" in _read(os.path.join(logdir, "hog.log")), "the hog ran")
        # The rest of the pod goes on.
        t.eq(rs.container_status(ids["calm"]).state, cri.CONTAINER_RUNNING, "calm still runs")
        r = rs.exec_sync(ids["calm"], ["echo", "still-here"], timeout=120)
        t.eq((r.exit_code, r.stdout), (0, b"still-here\n"), "the agent still answers")

        # No limit: the guest as a whole runs out; its kernel kills the
        # greedy process, never the agent, and CRI says so.
        ids["greedy"] = rs.create_container(sid, _container(cri, "greedy"), sandbox_config)
        rs.start_container(ids["greedy"])
        t.wait_for(lambda: rs.container_status(ids["greedy"]).state == cri.CONTAINER_EXITED,
                   300, "greedy to be stopped by the guest's OOM killer (%s)" % _diag(t))
        st = rs.container_status(ids["greedy"])
        t.eq(st.reason, "OOMKilled", "CRI's reason for the greedy one (exit %d)" % st.exit_code)
        r = rs.exec_sync(ids["calm"], ["echo", "still-here"], timeout=120)
        t.eq((r.exit_code, r.stdout), (0, b"still-here\n"), "the agent survived the guest OOM")
        rs.stop_pod_sandbox(sid)
        rs.remove_pod_sandbox(sid)
        sid = None
    finally:
        if sid:
            cri.remove_pod_quietly(rs, sid)
    left = shimtest.wait_gone(m.tmp, 60)
    t.check(not left, "no shim, QEMU or agent left", "%r\n%s" % (left, _diag(t)))
    t.eq(shimtest.sanitizer_reports(m.path("shim.log")), "", "sanitizer reports in the shim log")


def test_qemu_killed_cri_shows_every_container_exited(t):
    """QEMU killed with SIGKILL under a running CRI pod: CRI shows each of
    its containers exited with 137, the sandbox is no longer ready, and
    stopping and removing the pod leaves nothing."""
    import signal
    import cri
    m = t.module
    rs = cri.RuntimeService(m.cd.sock)
    t.cleanup(rs.close)
    logdir = m.path("podlogs-kill")
    os.makedirs(logdir)
    sandbox_config = _sandbox_config(cri, m, logdir)
    sid = rs.run_pod_sandbox(sandbox_config, "sealpod")
    try:
        cid = rs.create_container(sid, _container(cri, "calm"), sandbox_config)
        rs.start_container(cid)
        t.eq(rs.container_status(cid).state, cri.CONTAINER_RUNNING, "calm runs")
        qemu = [p for p, c in shimtest.sealpod_processes(m.tmp)
                if "qemu-system" in c.split(" ")[0]]
        t.eq(len(qemu), 1, "one UVM for the pod")
        os.kill(qemu[0], signal.SIGKILL)
        t.wait_for(lambda: rs.container_status(cid).state == cri.CONTAINER_EXITED, 120,
                   "CRI to show the container exited (%s)" % _diag(t))
        t.eq(rs.container_status(cid).exit_code, 137, "its exit code")
        t.wait_for(lambda: rs.pod_sandbox_status(sid).state != cri.SANDBOX_READY, 120,
                   "the sandbox to be not ready")
        rs.stop_pod_sandbox(sid)
        rs.remove_pod_sandbox(sid)
        sid = None
    finally:
        if sid:
            cri.remove_pod_quietly(rs, sid)
    left = shimtest.wait_gone(m.tmp, 60)
    t.check(not left, "no shim, QEMU or agent left", "%r\n%s" % (left, _diag(t)))
    run = m.path("run")
    t.eq(os.listdir(run) if os.path.isdir(run) else [], [], "sandbox state left")
