"""Issue 19 item 4 with the agent as PID 1 of a UVM (QEMU TCG): a
container id stays taken while its removal is pending. The host has one
byte stream to the agent (the virtio-serial port), so the pending
RemoveContainer and the racing calls share it, told apart by stream id.
One boot for the module (test_agent_vm's setup)."""
import os
import time

import test_agent
import test_agent_vm
from test_agent import ALREADY_EXISTS, PERMISSION_DENIED, RpcError, first, unpb

NEEDS_ROOT = True
SLOW = test_agent_vm.SLOW


class Mux:
    """Calls on one connection, out of order: start() sends a request and
    returns its stream id, result() waits for that id's response."""

    def __init__(self, c):
        self.c = c
        self.stash = {}
        self.next_id = 10001

    def start(self, method, timeout_s=0, **fields):
        sid = self.next_id
        self.next_id += 2
        svc = test_agent.HEALTH if method == "Check" else test_agent.AS
        req = test_agent.pb((1, svc), (2, method), (3, test_agent.encode(method, fields)),
                            (4, int(timeout_s * 1e9) if timeout_s else None))
        self.c.send_frame(sid, 1, req)
        return sid

    def result(self, sid):
        while sid not in self.stash:
            rsid, typ, body = self.c.recv_frame()
            self.stash[rsid] = body
        resp = unpb(self.stash.pop(sid))
        st = unpb(first(resp, 1, b""))
        code = first(st, 1, 0)
        if code:
            raise RpcError(code, first(st, 2, b"").decode())
        return unpb(first(resp, 2, b""))

    def call(self, method, timeout_s=30 * SLOW, **fields):
        return self.result(self.start(method, timeout_s=timeout_s, **fields))


def setup_module(m):
    test_agent_vm.setup_module(m)


def refused(t, fn, what, codes=(PERMISSION_DENIED,)):
    try:
        fn()
    except RpcError as e:
        t.check(e.code in codes, what + ": refused", e)
        return
    raise AssertionError(what + ": succeeded")


def test_id_stays_taken_while_removal_pending_in_uvm(t):
    m = t.module
    pod = m.pod
    x = Mux(m.c)
    x.call("SetPolicy", policy=pod.policy.decode())
    x.call("CreateSandbox", hostname="pod2", sandbox_id="pod2", pod_name="pod2",
           pod_namespace="default", storages=[{"driver": "oci-store", "source": "/dev/vda"}])

    def create(name):
        return x.call("CreateContainer", container_id="x", container_name=name, image=pod.image,
                      oci_spec=pod.specs[name], timeout_s=120 * SLOW)

    create("reader")
    x.call("StartContainer", container_id="x")
    refused(t, lambda: x.call("ReadStdout", container_id="x", len=10), "reader's logs")
    # The reader's `sleep` is PID 1 of its namespace: SIGTERM is ignored,
    # so the removal waits its whole timeout.
    t0 = time.time()
    rm = x.start("RemoveContainer", container_id="x", timeout=8, timeout_s=60 * SLOW)
    time.sleep(0.5)
    refused(t, lambda: create("writer"), "CreateContainer x (writer) during the removal",
            (PERMISSION_DENIED, ALREADY_EXISTS))
    refused(t, lambda: x.call("ReadStdout", container_id="x", len=10),
            "ReadStdout x during the removal: still reader's rules")
    t.check(time.time() - t0 < 8, "the racing calls came while the removal was pending",
            time.time() - t0)
    x.result(rm)
    t.check(time.time() - t0 >= 7, "the removal waited for SIGTERM's timeout", time.time() - t0)
    refused(t, lambda: x.call("ReadStdout", container_id="x", len=10), "ReadStdout x after")
    create("writer")
    x.call("StartContainer", container_id="x")
    r = x.call("ReadStdout", container_id="x", len=100, timeout_s=60 * SLOW)
    t.eq(first(r, 1), b"written\n", "writer's log under the reused id")
    x.call("RemoveContainer", container_id="x", timeout=0, timeout_s=60 * SLOW)
    x.call("DestroySandbox", timeout_s=60 * SLOW)
    t.check(m.qemu.poll() is None, "the UVM is still running", test_agent_vm.console(m))
    t.check(os.path.exists(os.path.join(m.run_dir, "agent.sock")), "agent port still there")
