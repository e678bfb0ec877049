"""The hostile-host findings of issues 19 and 20 against the real agent,
natively (sim PSP, policy from `sealpod policy gen`): each attack is
refused with an explanation, and the container the policy allows runs
with exactly what the policy says (CapEff, umask, read-only /sys,
/dev/shm options, the device cgroup), which the container itself reports.
"""
import copy
import json
import os

import test_agent
from test_agent import PERMISSION_DENIED, expect_code, first

SANITIZE = True
NEEDS_ROOT = True

CMD = ("grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb)' /proc/self/status; echo umask=$(umask); "
       "grep -E ' /(sys|dev/shm) ' /proc/self/mountinfo; echo done; sleep 30")
EXEC = ["/bin/sh", "-c", "grep ^CapEff /proc/self/status; echo umask=$(umask)"]

POD = """apiVersion: v1
kind: Pod
metadata:
  name: hostile
  namespace: default
  annotations:
    io.sealpod.policy/logs: "app"
    io.sealpod.policy/exec: '{"app": [%s]}'
spec:
  volumes:
  - name: data
    emptyDir: {}
  containers:
  - name: app
    image: docker.io/library/busybox:latest
    command: ["/bin/sh", "-c", %s]
    securityContext:
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
    resources:
      requests: {memory: 16Mi, cpu: 100m}
      limits: {memory: 64Mi, cpu: 500m}
    volumeMounts: [{name: data, mountPath: /data}]
""" % (json.dumps(EXEC), json.dumps(CMD))

# NET_BIND_SERVICE is capability 10.
CAPS = "0000000000000400"
MEM_LIMIT = 64 << 20


def setup_module(m):
    """test_agent's rootfs and busybox layout, this pod's policy and a sim
    PSP launched with its hash."""
    import base64
    import harness
    import images
    import yaml
    if not os.path.exists(os.path.join(m.build, "sealpod-agent")):
        raise harness.Skip("sealpod-agent is not built")
    test_agent.M = m
    m.rootfs = test_agent.busybox_rootfs(m.path("rootfs"))
    lay = m.layout = images.busybox_layout()
    m.digest = images.manifest_digest(lay)
    with open(m.path("hostile.yaml"), "w") as f:
        f.write(POD)
    r = m.run([m.prog("sealpod"), "policy", "gen", m.path("hostile.yaml"), "--image-dir", lay,
               "--output", m.path("hostile-policy.yaml")])
    if r.returncode != 0:
        raise harness.Failure("policy gen: " + r.stderr)
    doc = yaml.safe_load(open(m.path("hostile-policy.yaml")))
    m.h_policy = base64.b64decode(doc["metadata"]["annotations"]["io.sealpod.policy"])
    with open(m.path("hostile-policy.json"), "wb") as f:
        f.write(m.h_policy)
    with open(m.path("hostile-values.json"), "w") as f:
        json.dump({"HOSTNAME": "hostile"}, f)
    r = m.run([m.prog("sealpod"), "policy", "spec", m.path("hostile-policy.json"), "app",
               "--values", m.path("hostile-values.json")])
    if r.returncode != 0:
        raise harness.Failure("policy spec: " + r.stderr)
    m.h_spec = json.loads(r.stdout)
    m.h_image = images.NAME + "@" + m.digest
    m.h_psp = test_agent.start_psp(m, "psp-hostile", m.h_policy)
    test_agent.wait_path(m.h_psp, 120, "the sim PSP socket")


class HostileAgent(test_agent.Agent):
    def __init__(self, t):
        M = test_agent.M
        super().__init__(t, psp=M.h_psp, image_store=M.layout)
        self.spec = M.h_spec
        self.c.call("SetPolicy", policy=M.h_policy.decode())
        self.c.call("CreateSandbox", hostname="hostile", sandbox_id="sb1", pod_name="hostile",
                    pod_namespace="default")

    def create(self, cid, spec):
        return self.c.call("CreateContainer", container_id=cid, container_name="app",
                           image=test_agent.M.h_image, oci_spec=spec, timeout_s=60)

    def denied(self, what, spec, path):
        msg = expect_code(self.t, PERMISSION_DENIED, lambda: self.create("bad", spec), what)
        self.t.check("denied by policy" in msg and path in msg, what + ": names " + path, msg)
        self.t.check(not os.path.exists(self.t.path("state", "containers", "bad")),
                     what + ": nothing created")

    def process(self, args):
        p = copy.deepcopy(self.spec["process"])
        p["args"] = args
        return p


def edited(spec, fn):
    s = copy.deepcopy(spec)
    fn(s)
    return s


def mount_index(spec, dest):
    return [i for i, m in enumerate(spec["mounts"]) if m["destination"] == dest][0]


def read_until(c, cid, marker, eid=""):
    out = b""
    for _ in range(200):
        d = first(c.call("ReadStdout", container_id=cid, exec_id=eid, len=65536, timeout_s=30), 1, b"")
        if not d:
            break
        out += d
        if marker in out:
            break
    return out.decode()


def test_capabilities_absent_refused_and_capeff_is_the_policys(t):
    """Issue 19.1: no process.capabilities (or no effective set) is refused
    for CreateContainer and ExecProcess; the allowed container and exec
    run with exactly the policy's sets (CapEff as the container sees it)."""
    a = HostileAgent(t)
    a.denied("no process.capabilities",
             edited(a.spec, lambda s: s["process"].pop("capabilities")),
             "oci_spec.process.capabilities")
    a.denied("no effective set",
             edited(a.spec, lambda s: s["process"]["capabilities"].pop("effective")),
             "oci_spec.process.capabilities.effective")
    a.create("c1", a.spec)
    a.c.call("StartContainer", container_id="c1")
    out = read_until(a.c, "c1", b"done")
    for cap in ("CapEff", "CapPrm", "CapBnd"):
        t.check("%s:\t%s" % (cap, CAPS) in out, cap + " is the policy's (NET_BIND_SERVICE)", out)
    for cap in ("CapInh", "CapAmb"):
        t.check("%s:\t0000000000000000" % cap in out, cap + " empty", out)
    p = a.process(EXEC)
    del p["capabilities"]
    msg = expect_code(t, PERMISSION_DENIED, lambda: a.c.call(
        "ExecProcess", container_id="c1", exec_id="e0", process=p), "exec without capabilities")
    t.check("process.capabilities" in msg, "names the field", msg)
    a.c.call("ExecProcess", container_id="c1", exec_id="e1", process=a.process(EXEC))
    out = read_until(a.c, "c1", b"umask=", eid="e1")
    t.check("CapEff:\t%s" % CAPS in out, "the exec's CapEff is the policy's", out)
    t.eq(first(a.c.call("WaitProcess", container_id="c1", exec_id="e1", timeout_s=30), 1, 0), 0,
         "exec status")
    a.c.call("SignalProcess", container_id="c1", signal=9)
    a.c.call("RemoveContainer", container_id="c1", timeout_s=30)
    t.check(a.alive(), "agent alive", a.log_text())


def test_mounts_namespaces_devices_umask(t):
    """Issues 19.2, 19.3, 19.7, 20.1, 20.2: "ro" then "rw", a namespace path
    into the agent's own, a non-canonical volume source, an extra device
    rule, a umask and weaker /dev/shm options are refused; the allowed
    container sees /sys read-only, /dev/shm nosuid,nodev,noexec, umask 0022."""
    a = HostileAgent(t)
    s = a.spec
    sys_i, cg_i = mount_index(s, "/sys"), mount_index(s, "/sys/fs/cgroup")
    shm_i, data_i = mount_index(s, "/dev/shm"), mount_index(s, "/data")
    net_i = [i for i, n in enumerate(s["linux"]["namespaces"]) if n["type"] == "network"][0]
    a.denied("/sys ro then rw", edited(s, lambda x: x["mounts"][sys_i]["options"].append("rw")),
             "oci_spec.mounts[%d].options" % sys_i)
    a.denied("/sys/fs/cgroup ro then rw",
             edited(s, lambda x: x["mounts"][cg_i]["options"].append("rw")),
             "oci_spec.mounts[%d].options" % cg_i)
    a.denied("the agent's network namespace",
             edited(s, lambda x: x["linux"]["namespaces"][net_i].update(path="/proc/1/ns/net")),
             "oci_spec.linux.namespaces[%d].path" % net_i)
    a.denied("a non-canonical emptyDir source",
             edited(s, lambda x: x["mounts"][data_i].update(
                 source=x["mounts"][data_i]["source"].replace("/run/", "/run//"))),
             "oci_spec.mounts[%d].source" % data_i)
    a.denied("a loop device rule",
             edited(s, lambda x: x["linux"]["resources"]["devices"].append(
                 {"allow": True, "type": "b", "major": 7, "minor": 0, "access": "rwm"})),
             "oci_spec.linux.resources.devices")
    a.denied("umask 0", edited(s, lambda x: x["process"]["user"].update(umask=0)),
             "oci_spec.process.user.umask")
    a.denied("/dev/shm without noexec",
             edited(s, lambda x: x["mounts"][shm_i]["options"].remove("noexec")),
             "oci_spec.mounts[%d].options" % shm_i)
    a.create("c1", s)
    a.c.call("StartContainer", container_id="c1")
    out = read_until(a.c, "c1", b"done")
    t.check("umask=0022" in out, "the default umask", out)
    sysl = [x for x in out.splitlines() if " /sys " in x]
    t.check(sysl and " ro," in sysl[0] + ",", "/sys read-only", out)
    shm = [x for x in out.splitlines() if " /dev/shm " in x]
    t.check(shm and all(o in shm[0] for o in ("nosuid", "nodev", "noexec")),
            "/dev/shm nosuid,nodev,noexec", out)
    a.c.call("SignalProcess", container_id="c1", signal=9)
    a.c.call("RemoveContainer", container_id="c1", timeout_s=30)
    t.check(a.alive(), "agent alive", a.log_text())


def test_resources_bounded(t):
    """Issue 19.6: cgroup.procs / cgroup.kill in resources.unified and
    memory above the pod YAML's limit are refused at CreateContainer and
    UpdateContainer; an update within the limits is applied."""
    a = HostileAgent(t)
    s = a.spec
    for key in ("cgroup.procs", "cgroup.kill", "cgroup.threads", "cgroup.subtree_control"):
        a.denied("unified " + key,
                 edited(s, lambda x: x["linux"]["resources"].update(unified={key: "1"})),
                 "oci_spec.linux.resources.unified." + key)
    a.denied("memory above the limit",
             edited(s, lambda x: x["linux"]["resources"].update(memory={"limit": MEM_LIMIT + 1})),
             "oci_spec.linux.resources.memory.limit")
    a.create("c1", edited(s, lambda x: x["linux"]["resources"].update(memory={"limit": MEM_LIMIT})))
    a.c.call("StartContainer", container_id="c1")
    read_until(a.c, "c1", b"done")
    for key in ("cgroup.procs", "cgroup.kill"):
        msg = expect_code(t, PERMISSION_DENIED, lambda: a.c.call(
            "UpdateContainer", container_id="c1",
            resources={"unified": {key: str(os.getpid())}}), "update " + key)
        t.check("resources.unified." + key in msg, "names the key", msg)
    msg = expect_code(t, PERMISSION_DENIED, lambda: a.c.call(
        "UpdateContainer", container_id="c1", resources={"memory": {"limit": 1 << 30}}),
        "update above the limit")
    t.check("resources.memory.limit" in msg, "names the field", msg)
    a.c.call("UpdateContainer", container_id="c1", resources={"memory": {"limit": 32 << 20}})
    name = "sealpod-agent-%d-c1" % a.proc.pid
    files = ["/sys/fs/cgroup/%s/memory.max" % name,  # v2
             "/sys/fs/cgroup/memory/%s/memory.limit_in_bytes" % name]  # v1
    found = [f for f in files if os.path.exists(f)]
    t.check(found, "the container's memory cgroup", files)
    t.eq(open(found[0]).read().strip(), str(32 << 20), "memory limit updated within the bound")
    a.c.call("SignalProcess", container_id="c1", signal=9)
    a.c.call("RemoveContainer", container_id="c1", timeout_s=30)
    t.check(a.alive(), "agent alive (not moved or killed by a cgroup write)", a.log_text())
