"""sealpod-agent under sustained use, natively over its real ttRPC socket:
1,000 sequential execs in one container and 1,000 create/remove cycles of
a container in one pod. The agent's resident memory and its open file
descriptors are read from /proc before and after (after a warm-up, so
allocator pools are already there): both must stay flat, or the agent (PID 1
of the UVM, with a fixed memory budget) would die of a long-lived pod."""
import os
import time

import agentpod
import images
import test_agent
from test_agent import first

# Resident memory under ASan measures its quarantine, not the agent: this
# module runs in the normal build only (the other agent tests cover ASan).
SANITIZE = False
NEEDS_ROOT = True

POD = """apiVersion: v1
kind: Pod
metadata:
  name: load
  namespace: default
  annotations:
    io.sealpod.policy/exec: '{"app": [["/bin/true"], ["/bin/sh", "-c", "sleep 2 & exit 0"]]}'
spec:
  containers:
  - name: app
    image: docker.io/library/busybox:latest
    command: ["/bin/sh", "-c", "echo started; exec sleep 3600"]
  - name: churn
    image: docker.io/library/busybox:latest
    command: ["/bin/true"]
"""

EXECS = int(os.environ.get("SP_LOAD_EXECS", "1000"))
CYCLES = int(os.environ.get("SP_LOAD_CYCLES", "1000"))
# glibc gives each worker thread that allocates its own arena: the first
# ~150 requests, spread over the workers, grow RSS by ~4 MiB once (measured:
# 48.9 -> 52.1 MiB after 100 cycles, then 52.1 -> 52.5 MiB over 500 more).
# Growth is measured after that warm-up.
WARM = 200


def setup_module(m):
    pod = agentpod.Pod(m, yaml_text=POD, prefix="load", containers=("app", "churn"),
                       hostname="load", disk=False)
    m.layout, m.digest, m.policy, m.specs = pod.layout, pod.digest, pod.policy, pod.specs
    m.psp = test_agent.start_psp(m, "psp", m.policy)
    test_agent.wait_path(m.psp, 120, "the sim PSP socket")
    # test_agent.Agent reads its rootfs and sim PSP from that module's M.
    test_agent.M = m
    m.rootfs = test_agent.busybox_rootfs(m.path("rootfs"))
    m.psp_good = m.psp


def usage(pid):
    """(resident KiB, open fds) of a process."""
    with open("/proc/%d/status" % pid) as f:
        rss = [int(line.split()[1]) for line in f if line.startswith("VmRSS:")][0]
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def flat(t, samples, what, more=None):
    """samples: (RSS KiB, fds) before and after each quarter of the run.
    The allocator settles over the first few hundred requests, slower on a
    loaded machine (seen: +3 MiB in the first quarter, then +1.2, +1.1,
    +0.3; alone, 2,000 cycles end flat at the same level); a leak grows
    every quarter alike. So: fds never grow, the whole run adds < 8 MiB
    (a stream buffer leaked per request, 64 KiB, is 64 MiB), and the last
    quarter adds < 512 KiB (a leak of 2 KiB per request fails it). Under
    heavy load the settling can still reach the fourth quarter (seen once:
    +696 KiB): more(), when given, runs up to two more quarters, and the
    last of them must add < 512 KiB; a steady leak fails every one."""
    rss = [s[0] for s in samples]
    t.check(rss[-1] - rss[0] < 8192, "resident memory grows < 8 MiB over " + what, rss)
    for _ in range(2 if more else 0):
        if rss[-1] - rss[-2] < 512:
            break
        samples.append(more())
        rss.append(samples[-1][0])
        print("one more quarter of %s: RSS %s KiB" % (what, rss))
    t.check(max(s[1] for s in samples) <= samples[0][1], "open fds stay flat over " + what,
            samples)
    t.check(rss[-1] - rss[-2] < 512, "the last quarter of %s adds < 512 KiB" % what, rss)


def quarters(a, one, first_i, n):
    """flat()'s more(): each call runs one(i) for the next n values of i
    and returns the agent's usage after them."""
    nxt = [first_i]

    def more():
        for i in range(nxt[0], nxt[0] + n):
            one(i)
        nxt[0] += n
        return usage(a.proc.pid)
    return more


def start_pod(t):
    m = t.module
    a = test_agent.Agent(t, image_store=m.layout)
    a.c.call("SetPolicy", policy=m.policy.decode(), timeout_s=30)
    a.c.call("CreateSandbox", hostname="load", sandbox_id="load", pod_name="load",
             pod_namespace="default", timeout_s=30)
    return a


def image(t):
    return images.NAME + "@" + t.module.digest


def test_thousand_execs_keep_the_agent_flat(t):
    m = t.module
    a = start_pod(t)
    a.c.call("CreateContainer", container_id="app", container_name="app", image=image(t),
             oci_spec=m.specs["app"], timeout_s=120)
    a.c.call("StartContainer", container_id="app", timeout_s=30)
    proc = dict(m.specs["app"]["process"], args=["/bin/true"])

    def one(i):
        eid = "e%d" % i
        a.c.call("ExecProcess", container_id="app", exec_id=eid, process=proc, timeout_s=60)
        r = a.c.call("WaitProcess", container_id="app", exec_id=eid, timeout_s=60)
        t.eq(first(r, 1, 0), 0, "exec %s status" % eid)

    for i in range(WARM):
        one(i)
    before = usage(a.proc.pid)
    start = time.time()
    samples = [before]
    for i in range(WARM, WARM + EXECS):
        one(i)
        if (i - WARM + 1) % (EXECS // 4) == 0:
            samples.append(usage(a.proc.pid))
    took = time.time() - start
    after = usage(a.proc.pid)
    print("%d execs in %.1f s; agent RSS %d -> %d KiB, fds %d -> %d" % (
        EXECS, took, before[0], after[0], before[1], after[1]))
    t.check(after[1] <= before[1], "open fds stay flat", (before, after))
    flat(t, samples, "%d execs" % EXECS, quarters(a, one, WARM + EXECS, EXECS // 4))
    t.check(a.alive(), "agent alive", a.log_text())
    a.c.call("RemoveContainer", container_id="app", timeout=1, timeout_s=60)
    a.c.call("DestroySandbox", timeout_s=60)


def test_exec_whose_output_outlives_it_is_forgotten(t):
    """An exec whose output ends after WaitProcess returned (a background
    child holds the pipes): once the last EOF arrives the agent forgets the
    exec and closes its descriptors, as it does when the EOF came first.
    (Seen once under load: 1,000 execs left 2 stdin pipes open.)"""
    m = t.module
    a = start_pod(t)
    a.c.call("CreateContainer", container_id="app", container_name="app", image=image(t),
             oci_spec=m.specs["app"], timeout_s=120)
    a.c.call("StartContainer", container_id="app", timeout_s=30)
    before = usage(a.proc.pid)[1]
    proc = dict(m.specs["app"]["process"], args=["/bin/sh", "-c", "sleep 2 & exit 0"])
    a.c.call("ExecProcess", container_id="app", exec_id="late", process=proc, timeout_s=60)
    r = a.c.call("WaitProcess", container_id="app", exec_id="late", timeout_s=60)
    t.eq(first(r, 1, 0), 0, "the exec's status")
    t.check(usage(a.proc.pid)[1] > before, "the output is still open when WaitProcess returns",
            (before, usage(a.proc.pid)[1]))
    t.wait_for(lambda: usage(a.proc.pid)[1] <= before, 30,
               "the exec's descriptors closed after its output ended")

    def gone():
        try:
            a.c.call("WaitProcess", container_id="app", exec_id="late", timeout_s=5)
        except test_agent.RpcError as e:
            # The policy forgot the id with the process: refused before
            # the lookup.
            return e.code == test_agent.PERMISSION_DENIED and "exec_id" in e.message
        return False
    t.check(gone(), "the exec is forgotten (its id no longer allowed)")
    # Its id is free again, as after an exec whose output ended first.
    a.c.call("ExecProcess", container_id="app", exec_id="late",
             process=dict(proc, args=["/bin/true"]), timeout_s=60)
    r = a.c.call("WaitProcess", container_id="app", exec_id="late", timeout_s=60)
    t.eq(first(r, 1, 0), 0, "the reused id's status")
    a.c.call("RemoveContainer", container_id="app", timeout=1, timeout_s=60)
    a.c.call("DestroySandbox", timeout_s=60)


def test_thousand_create_remove_cycles_keep_the_agent_flat(t):
    """Each cycle unpacks the pod's image for the new container (from the
    oci-store), as a real pod's restarts do: ~0.15 s a cycle here."""
    m = t.module
    a = start_pod(t)

    def one(i):
        cid = "c%d" % i
        a.c.call("CreateContainer", container_id=cid, container_name="churn", image=image(t),
                 oci_spec=m.specs["churn"], timeout_s=120)
        a.c.call("StartContainer", container_id=cid, timeout_s=30)
        r = a.c.call("WaitProcess", container_id=cid, timeout_s=60)
        t.eq(first(r, 1, 0), 0, "container %s status" % cid)
        a.c.call("RemoveContainer", container_id=cid, timeout=1, timeout_s=60)

    for i in range(WARM):
        one(i)
    before = usage(a.proc.pid)
    start = time.time()
    samples = [before]
    for i in range(WARM, WARM + CYCLES):
        one(i)
        if (i - WARM + 1) % (CYCLES // 4) == 0:
            samples.append(usage(a.proc.pid))
    took = time.time() - start
    after = usage(a.proc.pid)
    print("%d create/start/wait/remove cycles in %.1f s; agent RSS %d -> %d KiB, fds %d -> %d"
          % (CYCLES, took, before[0], after[0], before[1], after[1]))
    t.check(after[1] <= before[1], "open fds stay flat", (before, after))
    flat(t, samples, "%d cycles" % CYCLES, quarters(a, one, WARM + CYCLES, CYCLES // 4))
    left = os.listdir(a.t.path("state", "containers")) \
        if os.path.isdir(a.t.path("state", "containers")) else []
    t.eq(left, [], "no container state left behind")
    t.check(a.alive(), "agent alive", a.log_text())
    a.c.call("DestroySandbox", timeout_s=60)


def test_thousand_hostile_connections_leave_the_host_answered(t):
    """1,000 connections at once besides the host's: idle ones, slow-loris
    ones that send half a frame header and stall, and ones that announce a
    large frame and trickle it. The host's own connection (opened first, as
    the shim's is) keeps getting answers within a second, and so does a
    host that connects afresh; closing the flood leaves the agent's fds
    where they were."""
    import socket
    import struct
    m = t.module
    a = test_agent.Agent(t, image_store=m.layout)
    a.c.call("SetPolicy", policy=m.policy.decode(), timeout_s=30)
    base_fds = usage(a.proc.pid)[1]
    socks = []
    t.cleanup(lambda: [s.close() for s in socks])
    for i in range(1000):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(a.sock)
        kind = i % 3
        if kind == 1:    # half a header, then nothing
            s.sendall(struct.pack(">IIBB", 64, 1, 1, 0)[:5])
        elif kind == 2:  # a 1 MiB frame announced, a few bytes of it sent
            s.sendall(struct.pack(">IIBB", 1 << 20, 1, 1, 0) + b"\x0a\x05")
        socks.append(s)

    def timed(c, method):
        start = time.time()
        c.call(method, timeout_s=5)
        return time.time() - start

    worst = max(timed(a.c, "Check") for _ in range(20))
    t.check(worst < 1.0, "the host's Check answered within 1 s during the flood", worst)
    worst = max(timed(a.c, "GetGuestDetails") for _ in range(5))
    t.check(worst < 1.0, "GetGuestDetails within 1 s during the flood", worst)
    fresh = test_agent.Client(a.sock)
    t.cleanup(fresh.close)
    t.check(timed(fresh, "Check") < 1.0, "a host connecting during the flood is answered")
    # Trickling one more byte to every announcing connection changes nothing.
    for i, s in enumerate(socks):
        if i % 3 == 2:
            s.sendall(b"\x00")
    t.check(timed(a.c, "Check") < 1.0, "answered while the trickles go on")
    for s in socks:
        s.close()
    socks.clear()
    fresh.close()
    t.wait_for(lambda: usage(a.proc.pid)[1] <= base_fds, 10,
               "the agent closed the flood's connections")
    t.check(a.alive(), "agent alive", a.log_text())
