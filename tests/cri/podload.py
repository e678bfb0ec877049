"""N pods at once through containerd's CRI: each pod sandbox and its one
container are started from its own thread, as kubelet's pod workers do;
each pod then serves (ExecSync of the command its policy allows), and all
are stopped and removed. Used by tests/integration/test_shim_load.py and
bench/bench-cri-pods (with the runc runtime as the peer)."""
import concurrent.futures
import threading
import time

import cri

POD = """apiVersion: v1
kind: Pod
metadata:
  name: loadpod
  namespace: default
  annotations:
    io.sealpod.policy/exec: '{"app": [["echo", "serving"]]}'
spec:
  automountServiceAccountToken: false
  containers:
  - name: app
    image: %(image)s
    command: ["sh", "-c", "echo up; exec sleep 3600"]
"""


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Pods:
    """n pods of POD under `handler`; timings in seconds."""

    def __init__(self, sock, image, policy, handler, n, logdir, create_timeout=900):
        self.rs = cri.RuntimeService(sock)
        self.image, self.policy, self.handler, self.n = image, policy, handler, n
        self.logdir = logdir
        self.timeout = create_timeout
        self.pods = []   # (sandbox id, container id, sandbox config)
        self.errors = []
        self.retried = []
        self.ready_s = {}
        self.lock = threading.Lock()

    def _config(self, i):
        ann = {"io.sealpod.policy": self.policy} if self.policy else {}
        # A host-network runc pod shares the node's UTS namespace: kubelet
        # sends no hostname for it (runc refuses to set one).
        return cri.host_pod_config("loadpod", self.logdir, ann,
                                   hostname="" if self.handler == "runc" else "loadpod-%d" % i)

    def _one(self, i, t0):
        cfg = self._config(i)
        sid = self.rs.call("RunPodSandbox", cri.msg("RunPodSandboxRequest", config=cfg,
                                                     runtime_handler=self.handler),
                           "RunPodSandboxResponse", timeout=self.timeout).pod_sandbox_id
        with self.lock:
            self.pods.append([sid, None, cfg])
        # kubelet sends the pod's command; the sealpod shim runs the one
        # the policy fixed, runc the one sent.
        cmd = {"command": ["sh", "-c", "echo up; exec sleep 3600"]} \
            if self.handler == "runc" else {}
        ccfg = cri.msg("ContainerConfig", metadata=cri.msg("ContainerMetadata", name="app"),
                       image=cri.msg("ImageSpec", image=self.image),
                       log_path="app-%d.log" % i, **cmd)
        cid = self.rs.call("CreateContainer", cri.msg("CreateContainerRequest",
                                                      pod_sandbox_id=sid, config=ccfg,
                                                      sandbox_config=cfg),
                           "CreateContainerResponse", timeout=self.timeout).container_id
        with self.lock:
            [p for p in self.pods if p[0] == sid][0][1] = cid
        self.rs.start_container(cid)
        r = self.rs.exec_sync(cid, ["echo", "serving"], timeout=300)
        if (r.exit_code, r.stdout) != (0, b"serving\n"):
            raise AssertionError("pod %d: ExecSync gave %d %r" % (i, r.exit_code, r.stdout))
        self.ready_s[i] = time.time() - t0

    def start(self):
        """Starts all pods at once; returns the seconds until all serve."""
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(self.n) as ex:
            futs = [ex.submit(self._one, i, t0) for i in range(self.n)]
            for f in futs:
                try:
                    f.result()
                except Exception as e:  # noqa: BLE001 - reported by the caller
                    self.errors.append(str(e))
        return time.time() - t0

    def serve_again(self):
        """Every pod answers once more; returns the failures."""
        bad = []
        for sid, cid, _ in self.pods:
            if not cid:
                continue
            r = self.rs.exec_sync(cid, ["echo", "serving"], timeout=300)
            if (r.exit_code, r.stdout) != (0, b"serving\n"):
                bad.append((cid, r.exit_code, r.stdout))
        return bad

    def stop(self):
        """Stops and removes every pod, in parallel; returns the seconds."""
        t0 = time.time()

        def down(p):
            # kubelet retries a StopPodSandbox that failed; so do we, once,
            # and report the first error separately (docs/shim.md: a stop
            # racing the shim's exit has answered "ttrpc: closed").
            for attempt in (1, 2):
                try:
                    self.rs.stop_pod_sandbox(p[0])
                    self.rs.remove_pod_sandbox(p[0])
                    return
                except Exception as e:  # noqa: BLE001
                    if attempt == 2:
                        self.errors.append("stop %s: %s" % (p[0], e))
                    else:
                        self.retried.append("stop %s: %s" % (p[0], str(e)[:200]))
                        time.sleep(1)
        with concurrent.futures.ThreadPoolExecutor(max(1, len(self.pods))) as ex:
            list(ex.map(down, list(self.pods)))
        self.pods = []
        return time.time() - t0

    def close(self):
        self.rs.close()
