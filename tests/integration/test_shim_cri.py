"""A Kubernetes pod through containerd's CRI with the sealpod runtime
handler, driven by a real gRPC client (tests/cri/cri.py): RunPodSandbox,
two CreateContainer/StartContainer in one UVM, ExecSync, container logs,
volumes (a ConfigMap and a Secret laid out as kubelet writes them, copied
into the guest; an emptyDir one container writes and the other reads),
StopPodSandbox, RemovePodSandbox, and nothing left behind.

One boot (the pod); the pod uses the host network, so no CNI is needed."""
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

CONF_VALUE = "hello-from-configmap"
SECRET_VALUE = "s3cret-value"

# The container commands print what the volumes hold: the ConfigMap's key
# (and that it is kubelet's ..data link, read-only), the Secret's, and the
# note web leaves in the shared emptyDir, which side waits for and prints.
# Backticks, not $(...): Kubernetes expands $(NAME) in commands.
POD = """apiVersion: v1
kind: ConfigMap
metadata:
  name: webconf
  namespace: default
data:
  greeting: %(conf)s
---
apiVersion: v1
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
    command:
    - sh
    - -c
    - >-
      echo web-started;
      echo "conf: `cat /etc/webconf/greeting` link: `readlink /etc/webconf/greeting`";
      echo "secret: `cat /etc/websecret/password`";
      touch /etc/webconf/x 2>/dev/null || echo conf-read-only;
      echo shared-by-web > /shared/.note && mv /shared/.note /shared/note;
      exec sleep 1000
    volumeMounts:
    - {name: conf, mountPath: /etc/webconf}
    - {name: creds, mountPath: /etc/websecret}
    - {name: scratch, mountPath: /shared}
  - name: side
    image: %(image)s
    command:
    - sh
    - -c
    - >-
      echo side-started;
      while [ ! -f /shared/note ]; do sleep 0.1; done;
      echo "side-read: `cat /shared/note`";
      exec sleep 1000
    volumeMounts:
    - {name: scratch, mountPath: /shared}
  - name: trapped
    image: %(image)s
    command: ["sleep", "1000"]
    volumeMounts:
    - {name: trap, mountPath: /etc/trap}
  volumes:
  - name: trap
    configMap: {name: trap}
  - name: conf
    configMap: {name: webconf}
  - name: creds
    secret: {secretName: websecret}
  - name: scratch
    emptyDir: {}
""" % {"image": IMAGE, "conf": CONF_VALUE}


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
    return cri.host_pod_config("cripod", logdir, {"io.sealpod.policy": policy})


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
        mounts = _kubelet_volumes(m.path("kubelet"), sandbox_config.metadata.uid)
        for name in ("web", "side"):
            cfg = cri.msg("ContainerConfig",
                          metadata=cri.msg("ContainerMetadata", name=name),
                          image=cri.msg("ImageSpec", image=IMAGE),
                          log_path=name + ".log", mounts=mounts[name])
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
            _check_hostile_volume(t, rs, sid, sandbox_config)
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

    # Volumes: the ConfigMap and Secret files kubelet wrote on the host,
    # copied into the guest with their ..data layout, read-only; the
    # emptyDir shared by both containers in the guest.
    web = os.path.join(logdir, "web.log")
    side = os.path.join(logdir, "side.log")
    t.wait_for(lambda: "conf-read-only" in _read(web), 60, "web's volume lines")
    t.check("conf: %s link: ..data/greeting" % CONF_VALUE in _read(web),
            "the ConfigMap's file in the guest, as kubelet's ..data link", _read(web))
    t.check("secret: %s" % SECRET_VALUE in _read(web), "the Secret's file in the guest", _read(web))
    t.wait_for(lambda: "side-read:" in _read(side), 180, "side's emptyDir line")
    t.check("side-read: shared-by-web" in _read(side),
            "side reads what web wrote into the shared emptyDir", _read(side))


def _kubelet_volumes(root, uid):
    """Host directories laid out as kubelet's pod volumes (CRI has no
    ConfigMap API) and each container's CRI mounts of them."""
    import cri
    vols = os.path.join(root, "pods", uid, "volumes")
    conf = os.path.join(vols, "kubernetes.io~configmap", "conf")
    creds = os.path.join(vols, "kubernetes.io~secret", "creds")
    scratch = os.path.join(vols, "kubernetes.io~empty-dir", "scratch")
    shimtest.atomic_writer_dir(conf, {"greeting": CONF_VALUE})
    shimtest.atomic_writer_dir(creds, {"password": SECRET_VALUE})
    os.makedirs(scratch)
    shared = cri.msg("Mount", container_path="/shared", host_path=scratch)
    return {
        "web": [cri.msg("Mount", container_path="/etc/webconf", host_path=conf, readonly=True),
                cri.msg("Mount", container_path="/etc/websecret", host_path=creds, readonly=True),
                shared],
        "side": [shared],
    }


def _check_hostile_volume(t, rs, sid, sandbox_config):
    """A host volume whose link points outside it (absolute) is refused in
    the guest (the policy's CopyFile rule), and the container with it is
    not created."""
    import cri
    m = t.module
    trap = os.path.join(m.path("kubelet"), "pods", sandbox_config.metadata.uid, "volumes",
                        "kubernetes.io~configmap", "trap")
    shimtest.atomic_writer_dir(trap, {"ok": "fine"})
    os.symlink("/etc/hostname", os.path.join(trap, "leak"))
    cfg = cri.msg("ContainerConfig", metadata=cri.msg("ContainerMetadata", name="trapped"),
                  image=cri.msg("ImageSpec", image=IMAGE), log_path="trapped.log",
                  mounts=[cri.msg("Mount", container_path="/etc/trap", host_path=trap,
                                  readonly=True)])
    # CRI creates the task (the shim's Create) at StartContainer.
    cid = rs.create_container(sid, cfg, sandbox_config)
    try:
        rs.start_container(cid)
    except Exception as e:
        t.check("symlink" in str(e) and "/etc/hostname" in str(e),
                "the error names the link target the guest refused", str(e))
    else:
        raise harness.Failure("a volume with an absolute link was accepted: container %s" % cid)
    t.check(rs.container_status(cid).state != cri.CONTAINER_RUNNING, "trapped is not running")
    rs.remove_container(cid)


def _assert_clean(t):
    m = t.module
    left = shimtest.wait_gone(m.tmp, 60)
    t.check(not left, "no shim, QEMU or agent left", "%r\n%s" % (left, _diag(t)))
    sockdir = os.path.join(m.cd.base, "s")
    t.eq(os.listdir(sockdir) if os.path.isdir(sockdir) else [], [], "shim sockets left")
    run = m.path("run")
    t.eq(os.listdir(run) if os.path.isdir(run) else [], [], "sandbox state left")
    t.eq(shimtest.sanitizer_reports(m.path("shim.log")), "", "sanitizer reports in the shim log")
