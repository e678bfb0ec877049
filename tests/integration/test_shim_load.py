"""Eight confidential pods at once through containerd's CRI on this 2-core
machine under TCG: all start (the test waits as long as the load needs,
but nothing may fail from load), all serve, all stop, and nothing is left.
bench/bench-cri-pods measures the same next to runc.

Eight boots, in parallel."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cri"))

import containerd  # noqa: E402
import harness  # noqa: E402
import shimtest  # noqa: E402

NEEDS_ROOT = True
# Eight UVMs are the load; the sanitizer twin would only double it (the
# shim's ASan run is covered by test_shim_cri and test_shim_faults).
SANITIZE = False
IMAGE = "docker.io/library/sp-busybox:1"
NS = "k8s.io"
N = int(os.environ.get("SP_LOAD_PODS", "8"))


def setup_module(m):
    shimtest.require_modules(harness)
    try:
        import podload
    except ImportError as e:
        raise harness.Skip("CRI client needs python3-grpcio and python3-protobuf: %s" % e)
    containerd.setup(m, podload.POD % {"image": IMAGE}, IMAGE, ns=NS,
                     vm={"vcpus": 1, "memory_mib": 256, "boot_timeout_s": 900})


def test_eight_pods_at_once(t):
    import podload
    m = t.module
    logdir = m.path("podlogs")
    os.makedirs(logdir)
    pods = podload.Pods(m.cd.sock, IMAGE, m.policy, "sealpod", N, logdir)
    t.cleanup(pods.close)
    t.cleanup(pods.stop)
    took = pods.start()
    t.eq(pods.errors, [], "every pod started and served (%.0f s)\n%s" % (
        took, containerd.diag(m, 40)))
    t.eq(len(pods.ready_s), N, "pods serving")
    qemus = [p for p, c in shimtest.sealpod_processes(m.tmp) if "qemu-system" in c.split(" ")[0]]
    t.eq(len(qemus), N, "one UVM per pod")
    t.eq(pods.serve_again(), [], "all pods serve again once all run")
    pods.stop()
    t.eq(pods.errors, [], "every pod stopped")
    left = shimtest.wait_gone(m.tmp, 120)
    t.check(not left, "no shim, QEMU or agent left", left)
    run = m.path("run")
    t.eq(os.listdir(run) if os.path.isdir(run) else [], [], "sandbox state left")
    t.eq(shimtest.sanitizer_reports(m.path("shim.log")), "", "sanitizer reports in the shim log")
