"""A Kubernetes pod through containerd's CRI with the sealpod runtime
handler, driven by a real gRPC client (tests/cri/cri.py): RunPodSandbox,
two CreateContainer/StartContainer in one UVM, ExecSync, container logs,
StopPodSandbox, RemovePodSandbox, and nothing left behind.

One boot (the pod); the pod uses the host network, so no CNI is needed."""
import os
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cri"))

import containerd  # noqa: E402
import harness  # noqa: E402
import shimtest  # noqa: E402

NEEDS_ROOT = True
SANITIZE = True
IMAGE = "docker.io/library/sp-busybox:1"
NS = "k8s.io"

POD = """apiVersion: v1
kind: Pod
metadata:
  name: cripod
  namespace: default
  annotations:
    io.sealpod.policy/logs: "*"
    io.sealpod.policy/exec: '{"web": [["echo", "exec-ok"]]}'
spec:
  automountServiceAccountToken: false
  containers:
  - name: web
    image: %(image)s
    command: ["sh", "-c", "echo web-started; exec sleep 1000"]
  - name: side
    image: %(image)s
    command: ["sh", "-c", "echo side-started; exec sleep 1000"]
""" % {"image": IMAGE}


def setup_module(m):
    shimtest.require_modules(harness)
    try:
        import cri  # noqa: F401  (python3-grpcio, python3-protobuf)
    except ImportError as e:
        raise harness.Skip("CRI client needs python3-grpcio and python3-protobuf: %s" % e)
    containerd.setup(m, POD, IMAGE, ns=NS)


def _diag(t):
    return containerd.diag(t.module, 80)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _pod_config(logdir, policy):
    import cri
    return cri.msg(
        "PodSandboxConfig",
        metadata=cri.msg("PodSandboxMetadata", name="cripod", namespace="default",
                         uid=str(uuid.uuid4()), attempt=0),
        hostname="cripod", log_directory=logdir,
        annotations={"io.sealpod.policy": policy},
        linux=cri.msg("LinuxPodSandboxConfig", security_context=cri.msg(
            "LinuxSandboxSecurityContext",
            namespace_options=cri.msg("NamespaceOption", network=cri.NODE))))


def test_pod_with_two_containers_in_one_uvm(t):
    import cri
    m = t.module
    rs = cri.RuntimeService(m.cd.sock)
    t.cleanup(rs.close)
    logdir = m.path("podlogs")
    os.makedirs(logdir)
    sandbox_config = _pod_config(logdir, m.policy)
    sid = None
    skip = None
    try:
        try:
            sid = rs.run_pod_sandbox(sandbox_config, "sealpod")
        except Exception as e:
            raise harness.Failure("RunPodSandbox: %s\n%s" % (e, _diag(t)))
        t.eq(rs.pod_sandbox_status(sid).state, cri.SANDBOX_READY, "sandbox state")
        ids = {}
        for name in ("web", "side"):
            cfg = cri.msg("ContainerConfig",
                          metadata=cri.msg("ContainerMetadata", name=name),
                          image=cri.msg("ImageSpec", image=IMAGE),
                          log_path=name + ".log")
            try:
                ids[name] = rs.create_container(sid, cfg, sandbox_config)
                rs.start_container(ids[name])
            except Exception as e:
                if shimtest.oci_store_denied(str(e)):
                    skip = shimtest.OCI_STORE_CONFLICT
                    break
                raise harness.Failure("container %s: %s\n%s" % (name, e, _diag(t)))
        if not skip:
            _check_running_pod(t, rs, ids, logdir)
        try:
            rs.stop_pod_sandbox(sid)
        except Exception as e:
            raise harness.Failure("StopPodSandbox: %s\n%s" % (e, _diag(t)))
        if not skip:
            for name, cid in ids.items():
                t.eq(rs.container_status(cid).state, cri.CONTAINER_EXITED, name + " exited")
        rs.remove_pod_sandbox(sid)
        sid = None
    finally:
        if sid:
            try:
                rs.stop_pod_sandbox(sid)
                rs.remove_pod_sandbox(sid)
            except Exception:
                pass
    _assert_clean(t)
    if skip:
        t.skip(skip)


def _check_running_pod(t, rs, ids, logdir):
    import cri
    m = t.module
    for name, cid in ids.items():
        t.eq(rs.container_status(cid).state, cri.CONTAINER_RUNNING, name + " running")
    procs = shimtest.sealpod_processes(m.tmp)
    qemus = [p for p, c in procs if "qemu-system" in c.split(" ")[0]]
    shims = [p for p, c in procs if c.split(" ")[0].endswith("containerd-shim-sealpod-v2")]
    t.eq(len(qemus), 1, "one UVM for the pod's sandbox and both containers")
    t.eq(len(shims), 1, "one shim for the pod")

    r = rs.exec_sync(ids["web"], ["echo", "exec-ok"], timeout=60)
    t.eq((r.exit_code, r.stdout), (0, b"exec-ok\n"), "ExecSync of an allowed command")
    try:
        r = rs.exec_sync(ids["web"], ["cat", "/etc/passwd"], timeout=60)
        t.check(r.exit_code != 0 and b"root:" not in r.stdout,
                "ExecSync of a command the policy does not list fails", r)
    except harness.Failure:
        raise
    except Exception as e:
        t.check("denied" in str(e), "the error says the policy denied it", str(e))

    for name in ("web", "side"):
        path = os.path.join(logdir, name + ".log")
        t.wait_for(lambda: (name + "-started") in _read(path), 30, name + " log line")
        t.check(" stdout F %s-started" % name in _read(path), "CRI log format", _read(path))


def _assert_clean(t):
    m = t.module
    left = shimtest.wait_gone(m.tmp, 60)
    t.check(not left, "no shim, QEMU or agent left", "%r\n%s" % (left, _diag(t)))
    sockdir = os.path.join(m.cd.base, "s")
    t.eq(os.listdir(sockdir) if os.path.isdir(sockdir) else [], [], "shim sockets left")
    run = m.path("run")
    t.eq(os.listdir(run) if os.path.isdir(run) else [], [], "sandbox state left")
    t.eq(shimtest.sanitizer_reports(m.path("shim.log")), "", "sanitizer reports in the shim log")
