"""sealpod-agent in native mode, driven over its real ttRPC socket: the
gate before SetPolicy, SetPolicy bound to the sim TEE's HOST_DATA, a
hostile host (malformed frames, huge lengths, unknown methods, reused
ids, unknown containers), the workload attestation endpoint, and — with
the policy evaluator built in — the container lifecycle, exec, I/O with a
slow reader and a policy-deny matrix.

The client below speaks the ttRPC wire format itself (10-byte frame
header, Request/Response protobufs) so the tests also check the agent
against an implementation of the protocol that is not sealpod's own."""
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import time

SANITIZE = True
NEEDS_ROOT = True

AS = "sealpod.agent.v1.AgentService"
SP_AGENT_ATTEST_ADDR = "127.0.0.1:8006"
HEALTH = "sealpod.agent.v1.Health"

# ---- protobuf, just enough ----


def _varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb(*fields):
    """fields: (number, value) with value int (varint), str/bytes (length
    delimited) or list of those (repeated)."""
    out = bytearray()
    for num, val in fields:
        vals = val if isinstance(val, list) else [val]
        for v in vals:
            if v is None:
                continue
            if isinstance(v, bool) or isinstance(v, int):
                out += _varint(num << 3) + _varint(int(v))
            else:
                if isinstance(v, str):
                    v = v.encode()
                out += _varint(num << 3 | 2) + _varint(len(v)) + v
    return bytes(out)


def unpb(data):
    """Decodes to {field: [values]} (varints as int, length-delimited as bytes)."""
    out = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(data, i)
        elif wt == 2:
            n, i = _read_varint(data, i)
            v, i = data[i:i + n], i + n
        elif wt == 1:
            v, i = data[i:i + 8], i + 8
        elif wt == 5:
            v, i = data[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def _read_varint(d, i):
    shift = n = 0
    while True:
        b = d[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def first(msg, num, default=None):
    v = msg.get(num)
    return v[0] if v else default

# ---- ttRPC client ----


class RpcError(Exception):
    def __init__(self, code, message):
        super().__init__("%d %s" % (code, message))
        self.code = code
        self.message = message


OK, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, \
    PERMISSION_DENIED = 0, 3, 4, 5, 6, 7
FAILED_PRECONDITION, UNIMPLEMENTED = 9, 12


class Client:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(30)
        self.s.connect(path)
        self.next_id = 1

    def close(self):
        self.s.close()

    def send_frame(self, sid, typ, body, flags=0, length=None):
        n = len(body) if length is None else length
        self.s.sendall(struct.pack(">IIBB", n, sid, typ, flags) + body)

    def recv_frame(self):
        hdr = self._recv(10)
        n, sid, typ, flags = struct.unpack(">IIBB", hdr)
        return sid, typ, self._recv(n)

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            c = self.s.recv(n - len(buf))
            if not c:
                raise ConnectionError("agent closed the connection")
            buf += c
        return buf

    def call_raw(self, service, method, payload, timeout_s=10, sid=None):
        if sid is None:
            sid = self.next_id
            self.next_id += 2
        req = pb((1, service), (2, method), (3, payload),
                 (4, int(timeout_s * 1e9) if timeout_s else None))
        self.send_frame(sid, 1, req)
        rsid, typ, body = self.recv_frame()
        assert rsid == sid and typ == 2, (rsid, sid, typ)
        resp = unpb(body)
        st = unpb(first(resp, 1, b""))
        code = first(st, 1, 0)
        if code:
            raise RpcError(code, first(st, 2, b"").decode())
        return unpb(first(resp, 2, b""))

    def call(self, method, timeout_s=10, **fields):
        timeout_s = fields.pop("timeout_s", timeout_s)
        return self.call_raw(HEALTH if method == "Check" else AS, method,
                             encode(method, fields), timeout_s)


# Field numbers of agent.proto requests (name -> number, kind).
REQ = {
    "CreateSandbox": {"hostname": 1, "dns": 2, "storages": 3, "sandbox_pidns": 4,
                      "sandbox_id": 5, "pod_name": 6, "pod_namespace": 7},
    "CreateContainer": {"container_id": 1, "exec_id": 2, "oci_spec": 3,
                        "storages": 4, "image": 5, "container_name": 6,
                        "container_type": 7},
    "StartContainer": {"container_id": 1},
    "RemoveContainer": {"container_id": 1, "timeout": 2},
    "ExecProcess": {"container_id": 1, "exec_id": 2, "process": 3},
    "SignalProcess": {"container_id": 1, "exec_id": 2, "signal": 3},
    "WaitProcess": {"container_id": 1, "exec_id": 2},
    "ReadStdout": {"container_id": 1, "exec_id": 2, "len": 3},
    "ReadStderr": {"container_id": 1, "exec_id": 2, "len": 3},
    "WriteStdin": {"container_id": 1, "exec_id": 2, "data": 3},
    "CloseStdin": {"container_id": 1, "exec_id": 2},
    "TtyWinResize": {"container_id": 1, "exec_id": 2, "row": 3, "column": 4},
    "StatsContainer": {"container_id": 1},
    "ListProcesses": {"container_id": 1, "format": 2, "args": 3},
    "UpdateContainer": {"container_id": 1, "resources": 2},
    "SetPolicy": {"policy": 1},
    "CopyFile": {"path": 1, "file_size": 2, "file_mode": 3, "dir_mode": 4,
                 "uid": 5, "gid": 6, "offset": 7, "data": 8},
    "GetReport": {"report_data": 1},
    "Check": {"service": 1},
}
STORAGE = {"driver": 1, "driver_options": 2, "source": 3, "fstype": 4,
           "options": 5, "mount_point": 6}


def encode(method, fields):
    nums = REQ.get(method, {})
    out = []
    for k, v in fields.items():
        if k == "storages":
            v = [pb(*[(STORAGE[a], b) for a, b in s.items()]) for s in v]
        elif isinstance(v, (dict, list)) and k in ("oci_spec", "process", "resources"):
            v = json.dumps(v)
        out.append((nums[k], v))
    return pb(*out)

# ---- fixtures ----


def busybox_rootfs(path):
    """A minimal root filesystem: static busybox and its applets."""
    os.makedirs(os.path.join(path, "bin"), exist_ok=True)
    for d in ("proc", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    shutil.copy("/usr/bin/busybox", os.path.join(path, "bin", "busybox"))
    for app in ("sh", "echo", "cat", "sleep", "true", "false", "head", "yes",
                "stty", "ls", "wc", "id", "dd", "seq"):
        os.symlink("busybox", os.path.join(path, "bin", app))
    return path


def start_psp(m, name, host_data_of):
    """A sim PSP whose reports carry HOST_DATA = sha256(host_data_of)."""
    sock = m.path(name + ".sock")
    state = m.path(name + "-state")
    os.makedirs(state, exist_ok=True)
    hd = hashlib.sha256(host_data_of).hexdigest()
    m.spawn([m.prog("sealpod"), "sim-psp", "--listen", "unix:" + sock, "--state", state,
             "--measurement", "00" * 48, "--host-data", hd],
            stdout=subprocess.DEVNULL, stderr=open(m.path(name + ".log"), "w"))
    return sock


def wait_path(path, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))


M = None


def setup_module(m):
    """Shared by the tests: the policy (generated once) and two sim PSPs,
    one launched with the policy's hash in HOST_DATA, one with another."""
    global M
    M = m
    import harness
    if not os.path.exists(os.path.join(m.build, "sealpod-agent")):
        raise harness.Skip("sealpod-agent is not built yet (it needs src/agent/pid1.c "
                           "from the vm branch)")
    m.layout, m.digest, m.policy, m.spec = policy_fixture(m)
    m.psp_good = start_psp(m, "psp-good", m.policy)
    m.psp_bad = start_psp(m, "psp-bad", b"the policy the host launched with")
    import agentpod
    m.pod2 = agentpod.Pod(m)
    m.psp_pod2 = start_psp(m, "psp-pod2", m.pod2.policy)
    m.rootfs = busybox_rootfs(m.path("rootfs"))
    for p in (m.psp_good, m.psp_bad, m.psp_pod2):
        wait_path(p, 120, "the sim PSP socket " + p)


class Agent:
    """An agent on a unix socket, using one of the module's sim PSPs."""

    def __init__(self, t, good=True, attest=None, image_store=None, psp=None):
        self.t = t
        self.sock = t.path("agent.sock")
        self.rootfs = M.rootfs
        psp = psp or (M.psp_good if good else M.psp_bad)
        argv = [t.prog("sealpod-agent"), "--listen", "unix:" + self.sock,
                "--tee", "sim:" + psp,
                "--state-dir", t.path("state"),
                "--rootfs-dir", self.rootfs, "--log-level", "debug"]
        if attest:
            argv += ["--attest", attest]
        if image_store:
            argv += ["--image-store", image_store]
        self.log = t.path("agent.log")
        self.proc = t.spawn(argv, stdout=subprocess.PIPE, stderr=open(self.log, "w"),
                            text=True)
        self.ready = self.proc.stdout.readline()
        t.check("ready" in self.ready, "agent ready line", self.log_text())
        self.c = Client(self.sock)
        t.cleanup(self.c.close)

    def log_text(self):
        with open(self.log) as f:
            return f.read()[-4000:]

    def alive(self):
        return self.proc.poll() is None


def expect_code(t, code, fn, what):
    try:
        fn()
    except RpcError as e:
        t.eq(e.code, code, what + " (" + e.message + ")")
        return e.message
    raise AssertionError("%s: call succeeded, expected code %d" % (what, code))

# ---- tests without a policy ----


def test_before_set_policy_only_three_requests(t):
    a = Agent(t)
    r = a.c.call("Check")
    t.eq(first(r, 1), b"SERVING", "health status")
    r = a.c.call("GetGuestDetails")
    t.eq(first(r, 3), b"sim", "tee kind")
    t.eq(first(r, 4, b""), b"", "no policy hash yet")
    for method, fields in [
            ("CreateSandbox", {"hostname": "h"}),
            ("CreateContainer", {"container_id": "c1", "oci_spec": {"process": {"args": ["true"]}}}),
            ("StartContainer", {"container_id": "c1"}),
            ("ExecProcess", {"container_id": "c1", "exec_id": "e"}),
            ("ReadStdout", {"container_id": "c1"}),
            ("ReadStderr", {"container_id": "c1"}),
            ("WriteStdin", {"container_id": "c1", "data": b"x"}),
            ("CopyFile", {"path": "/run/sealpod/sandbox/configmap/a/b"}),
            ("GetReport", {"report_data": b"n"}),
            ("DestroySandbox", {})]:
        msg = expect_code(t, PERMISSION_DENIED, lambda: a.c.call(method, **fields), method)
        t.check("SetPolicy" in msg, "denial says what to do", msg)
    t.check(not os.path.exists(t.path("state", "containers", "c1")), "nothing created")


def test_set_policy_wrong_hash_refused(t):
    a = PolicyAgent(t, good=False, set_policy=False)
    msg = expect_code(t, PERMISSION_DENIED,
                      lambda: a.c.call("SetPolicy", policy=a.policy.decode()), "SetPolicy")
    t.check("HOST_DATA" in msg, "names HOST_DATA", msg)
    t.check(hashlib.sha256(a.policy).hexdigest() in msg, "names the hash", msg)
    r = a.c.call("GetGuestDetails")
    t.eq(first(r, 4, b""), b"", "still no policy")
    expect_code(t, PERMISSION_DENIED,
                lambda: a.create(), "gate still closed")
    # A document that is not a policy is refused too.
    expect_code(t, PERMISSION_DENIED,
                lambda: a.c.call("SetPolicy", policy='{"version":1}'), "not a policy")


def test_hostile_host_never_crashes_agent(t):
    a = Agent(t)
    c = a.c
    # Unknown service and method.
    expect_code(t, UNIMPLEMENTED, lambda: c.call_raw(AS, "Frobnicate", b""), "unknown method")
    expect_code(t, UNIMPLEMENTED, lambda: c.call_raw("x.Y", "Check", b""), "unknown service")
    # A payload that is not the request message.
    expect_code(t, INVALID_ARGUMENT,
                lambda: c.call_raw(AS, "SetPolicy", b"\x0a\xff\xff\xff\xff\x0f"), "bad payload")
    # Requests out of order and for containers that do not exist (denied
    # before the policy, but never a crash).
    for m in ("StartContainer", "WaitProcess", "RemoveContainer", "SignalProcess"):
        expect_code(t, PERMISSION_DENIED, lambda: c.call(m, container_id="nope"), m)
    # Reused stream id: the agent answers (or drops) but keeps serving.
    c.call_raw(HEALTH, "Check", b"", sid=101)
    c.call_raw(HEALTH, "Check", b"", sid=101)
    # Garbage and a huge length on fresh connections.
    for junk in (b"\xff" * 64, struct.pack(">IIBB", 0xFFFFFFF0, 1, 1, 0) + b"x" * 100,
                 struct.pack(">IIBB", 5, 2, 1, 0) + b"\x0a\x03abc",
                 struct.pack(">IIBB", 3, 3, 9, 0) + b"abc"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(a.sock)
        try:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            s.recv(4096)
        except OSError:
            pass
        s.close()
    time.sleep(0.2)
    t.check(a.alive(), "agent still running", a.log_text())
    fresh = Client(a.sock)
    t.eq(first(fresh.call("Check"), 1), b"SERVING", "still serving")
    fresh.close()


def test_fuzz_corpus_replayed_over_the_socket(t):
    """The dispatcher fuzz corpus, sent as real requests."""
    a = Agent(t)
    corpus = os.path.join(os.path.dirname(__file__), "..", "..", "fuzz", "corpus",
                          "agent_dispatch")
    names = ["CreateSandbox", "DestroySandbox", "CreateContainer", "StartContainer",
             "RemoveContainer", "ExecProcess", "SignalProcess", "WaitProcess",
             "ReadStdout", "ReadStderr", "WriteStdin", "CloseStdin", "TtyWinResize",
             "StatsContainer", "ListProcesses", "UpdateContainer", "GetOOMEvent",
             "GetGuestDetails", "SetPolicy", "CopyFile", "GetReport", "Check",
             "NoSuchMethod"]
    for f in sorted(os.listdir(corpus)):
        data = open(os.path.join(corpus, f), "rb").read()
        off = 0
        while off + 3 <= len(data):
            m = names[data[off] % len(names)]
            n = min(data[off + 1] | data[off + 2] << 8, len(data) - off - 3)
            payload = data[off + 3:off + 3 + n]
            off += 3 + n
            try:
                a.c.call_raw(HEALTH if m == "Check" else AS, m, payload, timeout_s=0.2)
            except RpcError:
                pass
    t.check(a.alive(), "agent survived the corpus", a.log_text())


def test_attestation_endpoint_address_checked(t):
    """The endpoint opens at CreateSandbox, but a bad address is refused
    at start, naming it."""
    argv = [t.prog("sealpod-agent"), "--listen", "unix:" + t.path("a.sock"),
            "--state-dir", t.path("state"), "--attest"]
    for bad in ("127.0.0.1", "localhost:8006", "127.0.0.1:70000", "127.0.0.1:"):
        r = t.run(argv + [bad], timeout=30)
        t.check(r.returncode != 0 and bad in r.stderr and "IPv4:PORT" in r.stderr,
                "refused: " + bad, r.stderr)
    t.check(not os.path.exists(t.path("a.sock")), "no socket left behind")


def socket_inodes(pid):
    out = set()
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            link = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def tcp_listeners(pid):
    """Inodes of listening TCP sockets in the network namespace of pid."""
    with open("/proc/%d/net/tcp" % pid) as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return {r[9] for r in rows if r[3] == "0A"}


# ---- with a real policy: lifecycle, exec, slow reader, deny matrix ----

POD = """apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  annotations:
    io.sealpod.policy/logs: "app"
    io.sealpod.policy/exec: '{"app": [["/bin/sh", "-c", "yes | head -c 3000000"], ["/bin/cat"]]}'
spec:
  containers:
  - name: app
    image: docker.io/library/busybox:latest
    command: ["/bin/sh", "-c", "echo started; sleep 30"]
    stdin: true
"""


def policy_fixture(t):
    """A busybox layout, a policy generated for POD, the allowed spec."""
    import base64
    import images
    import yaml
    lay = images.busybox_layout()
    digest = images.manifest_digest(lay)
    with open(t.path("pod.yaml"), "w") as f:
        f.write(POD)
    r = t.run([t.prog("sealpod"), "policy", "gen", t.path("pod.yaml"), "--image-dir", lay,
               "--output", t.path("pod-policy.yaml")])
    if r.returncode != 0:
        raise AssertionError("policy gen: " + r.stderr)
    doc = yaml.safe_load(open(t.path("pod-policy.yaml")))
    policy = base64.b64decode(doc["metadata"]["annotations"]["io.sealpod.policy"])
    with open(t.path("policy.json"), "wb") as f:
        f.write(policy)
    with open(t.path("values.json"), "w") as f:
        json.dump({"HOSTNAME": "web"}, f)
    r = t.run([t.prog("sealpod"), "policy", "spec", t.path("policy.json"), "app",
               "--values", t.path("values.json")])
    if r.returncode != 0:
        raise AssertionError("policy spec: " + r.stderr)
    spec = json.loads(r.stdout)
    return lay, digest, policy, spec


class PolicyAgent(Agent):
    def __init__(self, t, good=True, set_policy=True):
        self.layout, self.digest, self.policy, self.spec = M.layout, M.digest, M.policy, M.spec
        super().__init__(t, good=good, image_store=self.layout)
        if set_policy:
            self.c.call("SetPolicy", policy=self.policy.decode())
        self.image = images_name() + "@" + self.digest

    def process(self, args):
        p = json.loads(json.dumps(self.spec["process"]))
        p["args"] = args
        return p

    def create(self, cid="c1", spec=None, **extra):
        return self.c.call("CreateContainer", container_id=cid, container_name="app",
                           image=self.image, oci_spec=spec or self.spec, **extra)


def images_name():
    import images
    return images.NAME


def read_all(c, cid, eid="", method="ReadStdout", chunk=65536, delay=0):
    out = b""
    while True:
        r = c.call(method, container_id=cid, exec_id=eid, len=chunk)
        d = first(r, 1, b"")
        if not d:
            return out
        out += d
        if delay:
            time.sleep(delay)


def test_lifecycle_exec_and_slow_reader_under_policy(t):
    a = PolicyAgent(t)
    r = a.c.call("GetGuestDetails")
    t.eq(first(r, 4).decode(), hashlib.sha256(a.policy).hexdigest(), "policy hash in force")
    # A second SetPolicy is refused.
    expect_code(t, PERMISSION_DENIED, lambda: a.c.call("SetPolicy", policy=a.policy.decode()),
                "second SetPolicy")
    a.c.call("CreateSandbox", hostname="web", sandbox_id="sb1", pod_name="web",
             pod_namespace="default")
    a.create()
    a.c.call("StartContainer", container_id="c1")
    r = a.c.call("ReadStdout", container_id="c1", len=100)
    t.eq(first(r, 1), b"started\n", "container output")
    # Exec outside the policy's list: denied, with the reason.
    msg = expect_code(t, PERMISSION_DENIED,
                      lambda: a.c.call("ExecProcess", container_id="c1", exec_id="e0",
                                       process=a.process(["/bin/sh", "-c", "id"])), "exec")
    t.check("denied" in msg, "explanation", msg)
    # 3 MB through the agent's 1 MiB buffer, read slowly: nothing lost.
    a.c.call("ExecProcess", container_id="c1", exec_id="big",
             process=a.process(["/bin/sh", "-c", "yes | head -c 3000000"]))
    time.sleep(0.5)
    data = read_all(a.c, "c1", "big", chunk=200000, delay=0.02)
    t.eq(len(data), 3000000, "bytes read")
    t.check(data[:4] == b"y\ny\n", "content", data[:10])
    r = a.c.call("WaitProcess", container_id="c1", exec_id="big")
    t.eq(first(r, 1, 0), 0, "exec status")
    # stdin through cat.
    a.c.call("ExecProcess", container_id="c1", exec_id="cat", process=a.process(["/bin/cat"]))
    r = a.c.call("WriteStdin", container_id="c1", exec_id="cat", data=b"ping\n")
    t.eq(first(r, 1), 5, "bytes written")
    a.c.call("CloseStdin", container_id="c1", exec_id="cat")
    t.eq(read_all(a.c, "c1", "cat"), b"ping\n", "echoed stdin")
    t.eq(first(a.c.call("WaitProcess", container_id="c1", exec_id="cat"), 1, 0), 0, "cat status")
    # ReadStdout with nothing to read waits for the deadline, then errors.
    expect_code(t, DEADLINE_EXCEEDED,
                lambda: a.c.call("ReadStdout", container_id="c1", timeout_s=0.5), "read deadline")
    a.c.call("SignalProcess", container_id="c1", signal=9)
    r = a.c.call("WaitProcess", container_id="c1")
    t.eq(first(r, 1), 137, "killed status")
    a.c.call("RemoveContainer", container_id="c1")
    # The policy forgot it with the removal: requests for it are denied.
    expect_code(t, PERMISSION_DENIED, lambda: a.c.call("WaitProcess", container_id="c1"),
                "wait after remove")
    t.check(not os.path.exists(t.path("state", "containers", "c1")), "container files removed")
    t.check(a.alive(), "agent alive", a.log_text())


def test_policy_deny_matrix(t):
    a = PolicyAgent(t)
    bad_args = json.loads(json.dumps(a.spec))
    bad_args["process"]["args"] = ["/bin/sh", "-c", "cat /etc/shadow"]
    priv = json.loads(json.dumps(a.spec))
    priv.setdefault("process", {}).setdefault("capabilities", {})["bounding"] = ["CAP_SYS_ADMIN"]
    cases = [
        ("CreateContainer args", lambda: a.create("x1", spec=bad_args)),
        ("CreateContainer capabilities", lambda: a.create("x2", spec=priv)),
        ("CreateContainer unknown name", lambda: a.c.call(
            "CreateContainer", container_id="x3", container_name="evil", image=a.image,
            oci_spec=a.spec)),
        ("CreateContainer other image", lambda: a.c.call(
            "CreateContainer", container_id="x4", container_name="app",
            image=images_name() + "@sha256:" + "0" * 64, oci_spec=a.spec)),
        ("CreateContainer dir storage", lambda: a.create(
            "x5", storages=[{"driver": "dir", "source": a.rootfs}])),
        ("ReadStdout of unknown container", lambda: a.c.call("ReadStdout", container_id="nope")),
        ("CopyFile outside volumes", lambda: a.c.call(
            "CopyFile", path="/etc/passwd", file_size=1, file_mode=0o100644, data=b"x")),
    ]
    for what, fn in cases:
        msg = expect_code(t, PERMISSION_DENIED, fn, what)
        t.check("denied" in msg, what + ": explanation", msg)
    t.check(not os.path.exists(t.path("state", "containers", "x1")), "nothing created")
    t.check(a.alive(), "agent alive", a.log_text())


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


def test_pod_resources_native(t):
    """Two containers run by the engine share an emptyDir and the pod's
    namespaces; the image comes from the pod's oci-store given in
    CreateSandbox; DestroySandbox leaves no mount behind."""
    import agentpod
    a = Agent(t, psp=M.psp_pod2, attest=SP_AGENT_ATTEST_ADDR)
    state = t.path("state")
    listener = []

    def endpoint_only_in_the_pod():
        mine = socket_inodes(a.proc.pid)
        t.eq(mine & tcp_listeners(a.proc.pid), set(),
             "no listener of the agent in its own network namespace")
        pod_ns = os.path.join(state, "sandbox", "ns", "network")
        r = t.run(["nsenter", "--net=" + pod_ns, "cat", "/proc/self/net/tcp"], timeout=30)
        rows = [line.split() for line in r.stdout.splitlines()[1:]]
        ours = [x for x in rows if x[3] == "0A" and x[9] in mine]
        t.eq([x[1] for x in ours], ["0100007F:1F46"],
             "the agent's listener on the pod's 127.0.0.1:8006")
        listener.append(ours[0][9])
        # This pod's policy names no key broker: resources are 501.
        status, body = pod_http_get(t, pod_ns, "/cdh/resource/r/t/k")
        t.eq(status, 501, "no policy.kbs: /cdh/resource status")
        t.check("`kbs`" in json.loads(body)["error"], "names the policy field", body)

    agentpod.run(t, a.c, M.pod2, M.pod2.disk,
                 sim_root=os.path.join(M.path("psp-pod2-state"), "ark.pem"),
                 during=endpoint_only_in_the_pod)
    t.eq(len(listener), 1, "the endpoint was seen")
    t.check(listener[0] not in socket_inodes(a.proc.pid),
            "DestroySandbox closed the endpoint's socket", listener)
    t.eq(mounts_under(state), [], "mounts left under the state directory")
    t.check(not os.path.exists(os.path.join(state, "sandbox")), "sandbox directory removed")
    cg = [d for d in os.listdir("/sys/fs/cgroup/pids")
          if d.startswith("sealpod-agent-%d" % a.proc.pid)] \
        if os.path.isdir("/sys/fs/cgroup/pids") else []
    t.eq(cg, [], "the agent's cgroups removed")
    t.check(a.alive(), "agent alive", a.log_text())


# ---- /cdh/resource through the key broker the policy names ----

CDH_POD = None


def cdh_pod_yaml():
    """agentpod's pod with the reader allowed to fetch resources."""
    import agentpod
    execs = {"reader": [agentpod.READER_EXEC, CDH_GOOD, CDH_OTHER, agentpod.CAPS_EXEC,
                        AA_TOKEN]}
    old = agentpod.POD.split("\n")
    out = []
    for line in old:
        if line.startswith("    io.sealpod.policy/exec:"):
            line = "    io.sealpod.policy/exec: '%s'" % json.dumps(execs)
        out.append(line)
    return "\n".join(out)


CDH_URL = "http://127.0.0.1:8006/cdh/resource/"
CDH_GOOD = ["/bin/wget", "-q", "-O", "-", CDH_URL + "r/t/k"]
CDH_OTHER = ["/bin/sh", "-c", "wget -q -O - %sr/t/other 2>&1; echo status=$?" % CDH_URL]
CDH_SECRET = b"the pod's secret\x00\xff\n"
AA_TOKEN = ["/bin/wget", "-q", "-O", "-", "http://127.0.0.1:8006/aa/token?token_type=kbs"]


def pod_http_get(t, pod_ns, path):
    """GET on the pod's 127.0.0.1:8006 from inside its network namespace:
    (status, body)."""
    code = ("import http.client,sys\n"
            "c=http.client.HTTPConnection('127.0.0.1',8006,timeout=60)\n"
            "c.request('GET',sys.argv[1]); r=c.getresponse()\n"
            "sys.stdout.write(str(r.status)+'\\n'+r.read().decode())\n")
    r = t.run(["nsenter", "--net=" + pod_ns, "/usr/bin/python3", "-c", code, path], timeout=90)
    t.eq(r.returncode, 0, "GET %s in the pod's namespace: %s" % (path, r.stderr))
    status, _, body = r.stdout.partition("\n")
    return int(status), body


TOKEN_TTL = 15


def aa_token_checks(t, pod_ns, url, port, in_container):
    """/aa/token?token_type=kbs from the pod's namespace right after the
    container's: the same cached token and key, which a workload uses
    against the broker itself. Returns the answer (for aa_token_expiry)."""
    import test_kbs
    tok = in_container
    t.eq(sorted(tok), ["tee_keypair", "token"], "CoCo's answer members")
    t.eq(tok["token"].count("."), 2, "a JWT")
    t.check("PRIVATE KEY" in tok["tee_keypair"], "the key as PEM", tok["tee_keypair"][:40])
    status, body = pod_http_get(t, pod_ns, "/aa/token?token_type=kbs")
    t.eq(status, 200, "/aa/token: %s" % body)
    t.eq(json.loads(body), tok, "the cached token and key, as the container got them")
    status, body = pod_http_get(t, pod_ns, "/aa/token?token_type=other")
    t.eq(status, 400, "token_type other")
    # A workload-like client: the token as bearer, the key to decrypt.
    with open(t.path("token.json"), "w") as f:
        f.write(json.dumps(tok))
    r = t.run(aa_kbs_get(t, url) + ["r/t/k"])
    t.eq(r.returncode, 0, "resource with the agent's token: " + r.stderr)
    with open(t.path("res.bin"), "rb") as f:
        t.eq(f.read(), CDH_SECRET, "the secret through the token")
    r = t.run(aa_kbs_get(t, url) + ["r/t/other"])
    t.check(r.returncode == 1 and "403" in r.stderr, "the token's claims still bind HOST_DATA",
            r.stderr)
    status, _, _ = test_kbs.request(port, "GET", "/kbs/v0/resource/r/t/k",
                                    headers={"Authorization": "Bearer " + tok["token"][:-4]
                                             + "AAAA"})
    t.eq(status, 401, "a changed token")
    return tok


def aa_kbs_get(t, url):
    return [t.prog("sealpod"), "kbs", "get-resource", "--url", url, "--token-json",
            t.path("token.json"), "--out", t.path("res.bin")]


def aa_token_expiry(t, pod_ns, url, tok, since):
    """Past the token's lifetime: the broker refuses it, /cdh/resource
    attests again, /aa/token hands out a new token."""
    time.sleep(max(0.0, since + TOKEN_TTL + 1 - time.time()))
    r = t.run(aa_kbs_get(t, url) + ["r/t/k"])
    t.check(r.returncode == 1 and "401" in r.stderr, "expired token refused", r.stderr)
    status, body = pod_http_get(t, pod_ns, "/cdh/resource/r/t/other")
    t.check(status == 403 and "host_data" in body.lower(),
            "after expiry /cdh/resource attests again (the policy then refuses)", body)
    status, body = pod_http_get(t, pod_ns, "/aa/token?token_type=kbs")
    t.eq(status, 200, "/aa/token after expiry")
    t.check(json.loads(body)["token"] != tok["token"], "a new token after expiry")


def test_cdh_resource_from_kbs_native(t):
    """A container fetches a secret from the key broker through the agent's
    endpoint: the broker the policy names releases it to the pod's
    HOST_DATA; a resource bound to another HOST_DATA is refused (403), a
    missing one is 404; the agent attests with its own (sim) TEE."""
    import agentpod
    import test_kbs
    s = t.prog("sealpod")
    meas = "00" * 48
    state = t.path("cdh-psp-state")
    os.makedirs(state, exist_ok=True)
    # The sim keys first: the broker trusts their root, the PSP needs the
    # policy, and the policy needs the broker's URL.
    t.run([s, "sim-psp", "--state", state, "--measurement", meas, "--out", t.path("warm.bin")],
          check=True, timeout=300)
    t.admin_token = "cdh-test-admin-token-0123456789"
    t.admin_file = t.path("admin.token")
    with open(t.admin_file, "w") as f:
        f.write(t.admin_token + "\n")
    # Tokens live TOKEN_TTL seconds, so the test sees the agent's cache expire.
    url, port = test_kbs.start_kbs(t, "kbs", ["--allow-sim", "--sim-root",
                                              os.path.join(state, "ark.pem"),
                                              "--allow-measurement", meas,
                                              "--session-ttl", str(TOKEN_TTL)])
    pod = agentpod.Pod(t, gen_args=["--kbs", url], yaml_text=cdh_pod_yaml(), prefix="cdh")
    t.eq(json.loads(pod.policy)["kbs"], {"url": url}, "policy.kbs from --kbs")
    sock = t.path("psp-cdh.sock")
    t.spawn([s, "sim-psp", "--listen", "unix:" + sock, "--state", state, "--measurement", meas,
             "--host-data", pod.host_data],
            stdout=subprocess.DEVNULL, stderr=open(t.path("psp-cdh.log"), "w"))
    wait_path(sock, 120, "the sim PSP socket")
    other_hd = hashlib.sha256(b"another pod's policy").hexdigest()
    for path, data, hd in (("r/t/k", CDH_SECRET, pod.host_data),
                           ("r/t/other", b"not yours", other_hd)):
        test_kbs.admin(port, "POST", "/kbs/v0/resource/" + path, data, t.admin_token, 200)
        test_kbs.admin(port, "POST", "/kbs/v0/resource-policy", json.dumps(
            {"path": path, "rule": {"host_data": [hd]}}).encode(), t.admin_token, 200)
    test_kbs.admin(port, "POST", "/kbs/v0/resource-policy", json.dumps(
        {"path": "r/t/missing", "rule": {"host_data": [pod.host_data]}}).encode(),
        t.admin_token, 200)

    a = Agent(t, psp=sock, attest=SP_AGENT_ATTEST_ADDR)
    c = a.c
    seen = []

    def fetch():
        pod_ns = os.path.join(t.path("state"), "sandbox", "ns", "network")
        # The token from inside the container (busybox wget), as a workload
        # gets it; this is the agent's first attestation with the broker.
        since = time.time()
        c.call("ExecProcess", container_id="r", exec_id="token",
               process=pod.process("reader", AA_TOKEN), timeout_s=30)
        out = agentpod.read_all(c, "r", "token", timeout_s=60)
        t.eq(first(c.call("WaitProcess", container_id="r", exec_id="token", timeout_s=60), 1,
                   0), 0, "wget of /aa/token: status")
        tok = aa_token_checks(t, pod_ns, url, port, json.loads(out))
        c.call("ExecProcess", container_id="r", exec_id="good",
               process=pod.process("reader", CDH_GOOD), timeout_s=30)
        out = agentpod.read_all(c, "r", "good", timeout_s=60)
        t.eq(first(c.call("WaitProcess", container_id="r", exec_id="good", timeout_s=60), 1, 0),
             0, "wget of r/t/k: status")
        t.eq(out, CDH_SECRET, "the secret released to this pod's HOST_DATA")
        c.call("ExecProcess", container_id="r", exec_id="other",
               process=pod.process("reader", CDH_OTHER), timeout_s=30)
        out = agentpod.read_all(c, "r", "other", timeout_s=60).decode()
        t.check("403" in out and "status=1" in out, "r/t/other refused with 403", out)
        status, body = pod_http_get(t, pod_ns, "/cdh/resource/r/t/other")
        t.eq(status, 403, "r/t/other: status")
        msg = json.loads(body)["error"]
        t.check(url in msg and "403" in msg and "host_data" in msg.lower(),
                "403 names the broker and its answer", msg)
        status, body = pod_http_get(t, pod_ns, "/cdh/resource/r/t/missing")
        t.eq(status, 404, "r/t/missing: status (%s)" % body)
        aa_token_expiry(t, pod_ns, url, tok, since)
        seen.append(True)

    agentpod.run(t, c, pod, pod.disk, during=fetch)
    t.eq(seen, [True], "the resource checks ran")
    t.check(a.alive(), "agent alive", a.log_text())



SEALED_SECRET = b"sealed-secret-plaintext-42"


def sealed_pod_yaml(sealed_a):
    """agentpod's two containers; the writer's env carries sealed secrets:
    SECRET_A as a literal in the YAML (the generator marks it), SECRET_B
    from a Secret (the generator cannot see it: the annotation marks it
    and lists what it may name)."""
    import agentpod
    pod = agentpod.POD.replace(
        '    io.sealpod.policy/logs: "writer"\n',
        '    io.sealpod.policy/logs: "writer"\n'
        '    io.sealpod.policy/sealed: \'{"writer": {"SECRET_B": ["r/t/sealed", "r/t/other"]}}\'\n')
    pod = pod.replace(
        '    command: ["/bin/sh", "-c", "echo hello > /data/msg; echo written; sleep 60"]\n',
        '    command: ["/bin/sh", "-c", "echo hello > /data/msg; echo written; '
        'echo A=$SECRET_A; echo B=$SECRET_B; sleep 60"]\n'
        '    env:\n'
        '    - name: SECRET_A\n'
        '      value: "%s"\n'
        '    - name: SECRET_B\n'
        '      valueFrom: {secretKeyRef: {name: creds, key: b, optional: true}}\n' % sealed_a)
    # The writer may exec a command printing its env (it gets the
    # container's unsealed values, not the sealed form the host sends).
    pod = pod.replace('{"reader": [', '{"writer": [["/bin/sh", "-c", "echo $SECRET_B"]], "reader": [')
    return pod


def sealed_broker(t, admin_token):
    """A sim PSP's key chain (measurement zero) and sealpod-kbs trusting
    it, with an admin token: (url, port, PSP state dir, measurement)."""
    import test_kbs
    meas = "00" * 48
    state = t.path("sealed-psp-state")
    os.makedirs(state, exist_ok=True)
    t.run([t.prog("sealpod"), "sim-psp", "--state", state, "--measurement", meas,
           "--out", t.path("warm.bin")], check=True, timeout=300)
    t.admin_token = admin_token
    t.admin_file = t.path("admin.token")
    with open(t.admin_file, "w") as f:
        f.write(t.admin_token + "\n")
    url, port = test_kbs.start_kbs(t, "kbs", ["--allow-sim", "--sim-root",
                                              os.path.join(state, "ark.pem"),
                                              "--allow-measurement", meas])
    return url, port, state, meas


def sealed_value(t, resource):
    return t.run([t.prog("sealpod"), "kbs", "seal", "kbs:///" + resource],
                 check=True).stdout.strip()


def test_sealed_env_native(t):
    """Sealed secrets in a container's env: unsealed by the agent at
    CreateContainer through the policy's broker (attesting with its sim
    TEE), so the container prints the secret while the host only ever
    sent the sealed form; a resource the broker's rule does not release to
    this HOST_DATA fails CreateContainer naming it (and not the value); a
    tampered value (another resource, a broken payload), a plain value in a
    sealed variable and a sealed value in another variable are refused by
    the policy."""
    import agentpod
    import test_kbs
    s = t.prog("sealpod")
    url, port, state, meas = sealed_broker(t, "sealed-test-admin-token-0123456789")
    good, other, unlisted = [sealed_value(t, "r/t/" + n) for n in ("sealed", "other", "unlisted")]
    pod = agentpod.Pod(t, gen_args=["--kbs", url], yaml_text=sealed_pod_yaml(good),
                       prefix="sealed")
    pol = json.loads(pod.policy)
    rules = {r.get("name"): r for c in pol["containers"] if c["name"] == "writer"
             for r in c["env"]}
    t.eq(rules["SECRET_A"].get("sealed"), ["r/t/sealed"], "literal sealed value marked")
    t.eq(rules["SECRET_B"].get("sealed"), ["r/t/sealed", "r/t/other"],
         "annotated Secret key marked")
    t.check("sealed" not in rules["HOSTNAME"], "other variables not sealed", rules["HOSTNAME"])
    sock = t.path("psp-sealed.sock")
    t.spawn([s, "sim-psp", "--listen", "unix:" + sock, "--state", state, "--measurement", meas,
             "--host-data", pod.host_data],
            stdout=subprocess.DEVNULL, stderr=open(t.path("psp-sealed.log"), "w"))
    wait_path(sock, 120, "the sim PSP socket")
    other_hd = hashlib.sha256(b"another pod's policy").hexdigest()
    for path, data, hd in (("r/t/sealed", SEALED_SECRET, pod.host_data),
                           ("r/t/other", b"not yours", other_hd)):
        test_kbs.admin(port, "POST", "/kbs/v0/resource/" + path, data, t.admin_token, 200)
        test_kbs.admin(port, "POST", "/kbs/v0/resource-policy", json.dumps(
            {"path": path, "rule": {"host_data": [hd]}}).encode(), t.admin_token, 200)

    def writer_spec(b):
        spec = json.loads(json.dumps(pod.specs["writer"]))
        spec["process"]["env"].append("SECRET_B=" + b)
        return spec

    a = Agent(t, psp=sock)
    c = a.c
    c.call("SetPolicy", policy=pod.policy.decode(), timeout_s=30)
    c.call("CreateSandbox", hostname=agentpod.HOSTNAME, sandbox_id="pod2", pod_name="pod2",
           pod_namespace="default", dns=[agentpod.DNS],
           storages=[{"driver": "oci-store", "source": pod.disk}], timeout_s=30)

    def create(cid, spec):
        return c.call("CreateContainer", container_id=cid, container_name="writer",
                      image=pod.image, oci_spec=spec, timeout_s=120)

    # The broker's rule does not release r/t/other to this pod's HOST_DATA.
    msg = expect_code(t, 7, lambda: create("w", writer_spec(other)),
                      "a resource the broker refuses to this pod")
    t.check("r/t/other" in msg and "403" in msg and "SECRET_B" in msg,
            "the failure names the variable, the resource and the broker's answer", msg)
    t.check(other[20:60] not in msg, "the sealed value is not echoed", msg)
    # Tampered: the payload swapped for one naming a resource the policy
    # does not list; a payload that is not base64url JSON; a plain value.
    parts = good.split(".")
    swapped = ".".join(parts[:2] + [unlisted.split(".")[2]] + parts[3:])
    broken = ".".join(parts[:2] + [parts[2][:-6] + "!!!!!!"] + parts[3:])
    for value, want, what in ((swapped, "r/t/unlisted", "another resource"),
                              (broken, "malformed", "a broken payload"),
                              ("hunter2", "not sealed", "a plain value in a sealed variable")):
        agentpod.expect_denied(t, lambda: create("w", writer_spec(value)), what)
        try:
            create("w", writer_spec(value))
        except RpcError as e:
            t.check(want in e.message and "SECRET_B" in e.message, what + ": explained",
                    e.message)
            t.check("hunter2" not in e.message and parts[2][10:40] not in e.message,
                    what + ": value not echoed", e.message)
    # A sealed value in a variable the policy does not mark sealed.
    spec = writer_spec(good)
    spec["process"]["env"] = [e if not e.startswith("HOSTNAME=") else "HOSTNAME=" + good
                              for e in spec["process"]["env"]]
    agentpod.expect_denied(t, lambda: create("w", spec), "a sealed value in HOSTNAME")

    # Released: the container prints the secrets; the host sent the sealed form.
    create("w", writer_spec(good))
    c.call("StartContainer", container_id="w", timeout_s=30)
    out = b""
    deadline = time.time() + 60
    while out.count(b"\n") < 3 and time.time() < deadline:
        out += agentpod.first(c.call("ReadStdout", container_id="w", len=1000, timeout_s=30),
                              1, b"")
    t.eq(out, b"written\nA=" + SEALED_SECRET + b"\nB=" + SEALED_SECRET + b"\n",
         "the container sees the unsealed values")
    # An exec gets the container's secrets (the host sends the sealed env).
    proc = json.loads(json.dumps(writer_spec(good)["process"]))
    proc["args"] = ["/bin/sh", "-c", "echo $SECRET_B"]
    c.call("ExecProcess", container_id="w", exec_id="e1", process=proc, timeout_s=30)
    t.eq(agentpod.read_all(c, "w", "e1", timeout_s=60), SEALED_SECRET + b"\n",
         "exec sees the unsealed value")
    # An exec cannot bring another sealed value for the agent to fetch.
    proc["env"] = [e if not e.startswith("SECRET_B=") else "SECRET_B=" + other
                   for e in proc["env"]]
    msg = expect_code(t, 7, lambda: c.call("ExecProcess", container_id="w", exec_id="e2",
                                           process=proc, timeout_s=30),
                      "an exec with another sealed value")
    t.check("SECRET_B" in msg, "named", msg)
    c.call("RemoveContainer", container_id="w", timeout=1, timeout_s=60)
    c.call("DestroySandbox", timeout_s=60)
    log = a.log_text()
    t.check(SEALED_SECRET.decode() not in log, "the agent's log has no secret", log[-2000:])
    t.check("SECRET_B: sealed secret unsealed" in log or "sealed secret unsealed" in log,
            "the agent logged the unsealing (without the value)", log[-2000:])
    t.check(a.alive(), "agent alive", a.log_text())


def sealed_volume_pod_yaml():
    """agentpod's pod; the writer mounts a Secret volume whose key
    `password` holds a sealed secret (marked by the annotation
    io.sealpod.policy/sealed-files: the generator cannot see Secrets) and
    `plain` a plain value, and prints both."""
    import agentpod
    pod = agentpod.POD.replace(
        '    io.sealpod.policy/logs: "writer"\n',
        '    io.sealpod.policy/logs: "writer"\n'
        '    io.sealpod.policy/sealed-files: \'{"creds": {"password": ["r/t/sealed", "r/t/other"]}}\'\n')
    pod = pod.replace(
        '    command: ["/bin/sh", "-c", "echo hello > /data/msg; echo written; sleep 60"]\n'
        '    volumeMounts: [{name: data, mountPath: /data}]\n',
        '    command: ["/bin/sh", "-c", "echo written; echo P=`cat /etc/creds/password`; '
        'echo Q=`cat /etc/creds/plain`; ls -l /etc/creds/ | grep -c password; sleep 60"]\n'
        '    volumeMounts: [{name: data, mountPath: /data}, {name: creds, mountPath: /etc/creds, readOnly: true}]\n')
    pod = pod.replace('  - name: data\n    emptyDir: {}\n',
                      '  - name: data\n    emptyDir: {}\n  - name: creds\n    secret: {secretName: creds}\n')
    return pod


def copy_secret_volume(c, name, files):
    """CopyFile of a Secret volume as kubelet's atomic writer lays it out:
    the files in a timestamped directory, ..data linking to it, each key a
    link through ..data."""
    base = "/run/sealpod/sandbox/secret/" + name
    ts = "..2026_01_02_03_04_05.000000001"
    c.call("CopyFile", path=base + "/" + ts, file_mode=0o040755, dir_mode=0o755, timeout_s=30)
    for key, data in files.items():
        c.call("CopyFile", path="%s/%s/%s" % (base, ts, key), file_size=len(data),
               file_mode=0o100644, dir_mode=0o755, data=data, timeout_s=30)
    c.call("CopyFile", path=base + "/..data", file_size=len(ts), file_mode=0o120777,
           data=ts.encode(), timeout_s=30)
    for key in files:
        t = ("..data/" + key).encode()
        c.call("CopyFile", path=base + "/" + key, file_size=len(t), file_mode=0o120777, data=t,
               timeout_s=30)


def test_sealed_volume_native(t):
    """Sealed Secret volume files (docs/agent.md "Sealed secrets"): the
    policy marks key `password` of volume `creds` sealed; CopyFile keeps
    the sealed bytes the host sent; CreateContainer gives the writer a
    private copy of the volume with the file unsealed through the
    policy's broker (the plain key as sent), so the container prints the
    secret while the pod's volume still holds the sealed form, and the
    copy goes with the container. A resource the broker refuses to this
    HOST_DATA, one the policy does not list, and a plain value in the
    marked file each fail CreateContainer naming the volume and the file,
    never the value."""
    import agentpod
    import test_kbs
    s = t.prog("sealpod")
    url, port, state, meas = sealed_broker(t, "sealed-vol-admin-token-0123456789")
    good, other, unlisted = [sealed_value(t, "r/t/" + n) for n in ("sealed", "other", "unlisted")]
    pod = agentpod.Pod(t, gen_args=["--kbs", url], yaml_text=sealed_volume_pod_yaml(),
                       prefix="sealedvol")
    pol = json.loads(pod.policy)
    t.eq(pol["requests"].get("sealed_files"),
         {"/run/sealpod/sandbox/secret/creds": {"password": ["r/t/sealed", "r/t/other"]}},
         "the policy marks the Secret volume's key sealed")
    sock = t.path("psp-sealedvol.sock")
    t.spawn([s, "sim-psp", "--listen", "unix:" + sock, "--state", state, "--measurement", meas,
             "--host-data", pod.host_data],
            stdout=subprocess.DEVNULL, stderr=open(t.path("psp-sealedvol.log"), "w"))
    wait_path(sock, 120, "the sim PSP socket")
    other_hd = hashlib.sha256(b"another pod's policy").hexdigest()
    for path, data, hd in (("r/t/sealed", SEALED_SECRET, pod.host_data),
                           ("r/t/other", b"not yours", other_hd)):
        test_kbs.admin(port, "POST", "/kbs/v0/resource/" + path, data, t.admin_token, 200)
        test_kbs.admin(port, "POST", "/kbs/v0/resource-policy", json.dumps(
            {"path": path, "rule": {"host_data": [hd]}}).encode(), t.admin_token, 200)

    a = Agent(t, psp=sock)
    c = a.c
    c.call("SetPolicy", policy=pod.policy.decode(), timeout_s=30)
    c.call("CreateSandbox", hostname=agentpod.HOSTNAME, sandbox_id="pod2", pod_name="pod2",
           pod_namespace="default", dns=[agentpod.DNS],
           storages=[{"driver": "oci-store", "source": pod.disk}], timeout_s=30)

    def create(cid):
        return c.call("CreateContainer", container_id=cid, container_name="writer",
                      image=pod.image, oci_spec=pod.specs["writer"], timeout_s=120)
    ts = "..2026_01_02_03_04_05.000000001"
    for value, want, code, what in (
            (other, ["r/t/other", "403"], 7, "a resource the broker refuses to this pod"),
            (unlisted, ["r/t/unlisted", "not a resource the policy lists"], 7,
             "a resource the policy does not list"),
            ("hunter2", ["not a sealed secret"], 7, "a plain value in a sealed file")):
        copy_secret_volume(c, "creds", {"password": value.encode() + b"\n", "plain": b"visible"})
        msg = expect_code(t, code, lambda: create("w"), what)
        t.check(all(w in msg for w in want) and "creds" in msg and "password" in msg,
                what + ": the error names the volume, the file and the reason", msg)
        t.check(value not in msg and (len(value) < 60 or value[20:60] not in msg),
                what + ": value not echoed", msg)

    # Released: the writer sees the secret in its copy of the volume.
    copy_secret_volume(c, "creds", {"password": good.encode() + b"\n", "plain": b"visible"})
    create("w")
    c.call("StartContainer", container_id="w", timeout_s=30)
    out = b""
    deadline = time.time() + 60
    while out.count(b"\n") < 4 and time.time() < deadline:
        out += agentpod.first(c.call("ReadStdout", container_id="w", len=1000, timeout_s=30),
                              1, b"")
    t.eq(out, b"written\nP=" + SEALED_SECRET + b"\nQ=visible\n1\n",
         "the container sees the unsealed file and the plain one, as links")
    vol = os.path.join(t.path("state"), "sandbox", "secret", "creds", ts, "password")
    with open(vol, "rb") as f:
        t.eq(f.read(), good.encode() + b"\n", "the pod's volume keeps the sealed form")
    copies = [os.path.join(d, fn) for d, _, fns in os.walk(t.path("state")) for fn in fns
              if "sealed-volumes" in d]
    t.check(copies, "the container's copy is in its bundle", t.path("state"))
    c.call("RemoveContainer", container_id="w", timeout=1, timeout_s=60)
    left = [d for d, _, _ in os.walk(t.path("state")) if "sealed-volumes" in d]
    t.eq(left, [], "the copy went with the container")
    c.call("DestroySandbox", timeout_s=60)
    log = a.log_text()
    t.check(SEALED_SECRET.decode() not in log, "the agent's log has no secret", log[-2000:])
    t.check("file password: sealed secret unsealed" in log,
            "the agent logged the unsealing (without the value)", log[-2000:])
    t.check(a.alive(), "agent alive", a.log_text())


def test_sealed_env_broker_stall_holds_no_lock(t):
    """The agent lock is not held while CreateContainer waits for the key
    broker: with a broker that accepts the connection and says nothing,
    another container is created and started meanwhile; RemoveContainer of
    the stalled one waits for its creator, which gives up when the broker
    finally answers (ABORTED), and the id is free again."""
    import threading
    import agentpod
    s = t.prog("sealpod")
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    t.cleanup(lst.close)
    url = "http://127.0.0.1:%d" % lst.getsockname()[1]
    got, release, conns = threading.Event(), threading.Event(), []

    def stub():
        while True:
            try:
                c, _ = lst.accept()
            except OSError:
                return
            conns.append(c)
            got.set()
            release.wait(60)
            c.close()
    threading.Thread(target=stub, daemon=True).start()
    t.cleanup(release.set)
    good = t.run([s, "kbs", "seal", "kbs:///r/t/sealed"], check=True).stdout.strip()
    pod = agentpod.Pod(t, gen_args=["--kbs", url], yaml_text=sealed_pod_yaml(good),
                       prefix="stall")
    # The module's sim keys (psp-good's state), this pod's HOST_DATA.
    sock = t.path("psp-stall.sock")
    t.spawn([s, "sim-psp", "--listen", "unix:" + sock, "--state",
             os.path.join(os.path.dirname(M.psp_good), "psp-good-state"),
             "--measurement", "00" * 48, "--host-data", pod.host_data],
            stdout=subprocess.DEVNULL, stderr=open(t.path("psp-stall.log"), "w"))
    wait_path(sock, 120, "the sim PSP socket")
    a = Agent(t, psp=sock)
    c = a.c
    c.call("SetPolicy", policy=pod.policy.decode(), timeout_s=30)
    c.call("CreateSandbox", hostname=agentpod.HOSTNAME, sandbox_id="pod2", pod_name="pod2",
           pod_namespace="default", dns=[agentpod.DNS],
           storages=[{"driver": "oci-store", "source": pod.disk}], timeout_s=30)
    res = {}

    def create():
        c2 = Client(a.sock)
        try:
            c2.call("CreateContainer", container_id="w", container_name="writer",
                    image=pod.image, oci_spec=pod.specs["writer"], timeout_s=120)
            res["ok"] = True
        except RpcError as e:
            res["err"] = e
        finally:
            c2.close()
    th = threading.Thread(target=create)
    th.start()
    t.check(got.wait(60), "the agent dialled the broker")
    # The creator waits for the broker: the agent still creates and
    # starts another container (this needs its lock).
    since = time.time()
    c.call("CreateContainer", container_id="r", container_name="reader", image=pod.image,
           oci_spec=pod.specs["reader"], timeout_s=60)
    c.call("StartContainer", container_id="r", timeout_s=30)
    t.check(time.time() - since < 8, "the other container was created meanwhile (%.1f s)"
            % (time.time() - since))
    t.check(th.is_alive(), "the sealed container's creation still waits for the broker")
    # RemoveContainer of the stalled one waits for its creator; the broker
    # answers (closes) meanwhile.
    rm = {}

    def remove():
        c3 = Client(a.sock)
        try:
            c3.call("RemoveContainer", container_id="w", timeout=1, timeout_s=60)
            rm["ok"] = True
        except RpcError as e:
            rm["err"] = e
        finally:
            c3.close()
    th2 = threading.Thread(target=remove)
    th2.start()
    time.sleep(1)
    release.set()
    th.join(60)
    th2.join(60)
    t.check("err" in res and res["err"].code == 10, "CreateContainer aborted", res)
    t.eq(rm, {"ok": True}, "RemoveContainer finished the removal")
    # The id is free again (the broker now answers nothing useful: refused
    # with the variable named, not the value).
    lst.close()
    msg = None
    try:
        c.call("CreateContainer", container_id="w", container_name="writer", image=pod.image,
               oci_spec=pod.specs["writer"], timeout_s=60)
    except RpcError as e:
        msg = e.message
    t.check(msg is not None, "with the broker unreachable the container is not created")
    t.check("SECRET_A" in msg and "r/t/sealed" in msg and good[25:60] not in msg,
            "named, not echoed", msg)
    c.call("RemoveContainer", container_id="r", timeout=1, timeout_s=60)
    c.call("DestroySandbox", timeout_s=60)
    for x in conns:
        x.close()
    t.check(a.alive(), "agent alive", a.log_text())
