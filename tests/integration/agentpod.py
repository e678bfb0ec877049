"""A two-container pod for the guest agent's tests, natively
(test_agent.test_pod_resources_native) and inside the UVM (test_agent_vm):
both containers mount one emptyDir, share the pod's network, IPC and UTS
namespaces and see the pod's /etc files; the images come from the pod's
oci-store (a tar made by `sealpod image pack`). The reader fetches evidence
from the agent's attestation endpoint on the pod's loopback, and the host
verifies it with `sealpod verify`."""
import base64
import hashlib
import json
import os

import harness
import images

POD = """apiVersion: v1
kind: Pod
metadata:
  name: pod2
  namespace: default
  annotations:
    io.sealpod.policy/logs: "writer"
    io.sealpod.policy/exec: '{"reader": [["/bin/sh", "-c", "cat /data/msg; hostname; cat /etc/resolv.conf; ls -d /dev/shm"], ["/bin/wget", "-q", "-O", "-", "http://127.0.0.1:8006/aa/evidence?runtime_data=pod2%20nonce%2B1"], ["/bin/grep", "^Cap", "/proc/self/status"]]}'
    io.sealpod.policy/requests: '{"stats": true, "list_processes": true, "update_container": true}'
spec:
  volumes:
  - name: data
    emptyDir: {}
  containers:
  - name: writer
    image: docker.io/library/busybox:latest
    command: ["/bin/sh", "-c", "echo hello > /data/msg; echo written; sleep 60"]
    volumeMounts: [{name: data, mountPath: /data}]
  - name: reader
    image: docker.io/library/busybox:latest
    command: ["/bin/sleep", "60"]
    volumeMounts: [{name: data, mountPath: /data}]
"""
READER_EXEC = ["/bin/sh", "-c", "cat /data/msg; hostname; cat /etc/resolv.conf; ls -d /dev/shm"]
# The workload's request to the attestation endpoint: the runtime data
# arrives percent-decoded ("pod2 nonce+1"), REPORT_DATA = its SHA-512.
EVIDENCE_EXEC = ["/bin/wget", "-q", "-O", "-",
                 "http://127.0.0.1:8006/aa/evidence?runtime_data=pod2%20nonce%2B1"]
RUNTIME_DATA = b"pod2 nonce+1"
CAPS_EXEC = ["/bin/grep", "^Cap", "/proc/self/status"]
# containerd's default capabilities (no securityContext in POD).
DEFAULT_CAPS = "00000000a80425fb"
HOSTNAME = "pod2"
DNS = "nameserver 10.0.0.10"

PERMISSION_DENIED = 7


class Pod:
    """The policy (and its SHA-256, the HOST_DATA), each container's
    allowed spec, the image reference and the image disk (a tar)."""

    def __init__(self, m, gen_args=(), edit=None, yaml_text=POD, prefix="pod2",
                 containers=("writer", "reader"), hostname=HOSTNAME, disk=True):
        """gen_args: more `sealpod policy gen` flags; edit: a function
        changing the generated policy (a dict) before it is fixed;
        yaml_text: another pod (containers: its containers' names,
        hostname: the HOSTNAME its specs get); prefix: its file names;
        disk: whether to pack the image disk."""
        lay = images.busybox_layout()
        self.digest = images.manifest_digest(lay)
        self.image = images.NAME + "@" + self.digest
        with open(m.path(prefix + ".yaml"), "w") as f:
            f.write(yaml_text)
        r = m.run([m.prog("sealpod"), "policy", "gen", m.path(prefix + ".yaml"), "--image-dir", lay,
                   "--output", m.path(prefix + "-policy.yaml")] + list(gen_args))
        if r.returncode != 0:
            raise harness.Failure("policy gen: " + r.stderr)
        import yaml
        doc = yaml.safe_load(open(m.path(prefix + "-policy.yaml")))
        self.policy = base64.b64decode(doc["metadata"]["annotations"]["io.sealpod.policy"])
        if edit:
            pol = json.loads(self.policy)
            edit(pol)
            # The canonical form (sorted keys, compact, UTF-8), checked
            # against sealpod's own below.
            self.policy = json.dumps(pol, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()
        self.host_data = hashlib.sha256(self.policy).hexdigest()
        with open(m.path(prefix + "-policy.json"), "wb") as f:
            f.write(self.policy)
        if edit:
            r = m.run([m.prog("sealpod"), "policy", "hash", m.path(prefix + "-policy.json")])
            if r.returncode != 0 or r.stdout.strip() != self.host_data:
                raise harness.Failure("edited policy not canonical: %s %s" % (r.stdout, r.stderr))
        with open(m.path(prefix + "-values.json"), "w") as f:
            json.dump({"HOSTNAME": hostname}, f)
        self.specs = {}
        for name in containers:
            r = m.run([m.prog("sealpod"), "policy", "spec", m.path(prefix + "-policy.json"), name,
                       "--values", m.path(prefix + "-values.json")])
            if r.returncode != 0:
                raise harness.Failure("policy spec: " + r.stderr)
            self.specs[name] = json.loads(r.stdout)
        self.layout = lay
        if not disk:
            return
        # The image disk: the layout imported into a store, packed.
        store = m.path(prefix + "-store")
        r = m.run([m.prog("sealpod"), "image", "import", lay, "--store", store,
                   "--tag", images.NAME])
        if r.returncode != 0:
            raise harness.Failure("image import: " + r.stderr)
        self.disk = m.path(prefix + "-images.tar")
        r = m.run([m.prog("sealpod"), "image", "pack", "--store", store, "--output", self.disk,
                   images.NAME])
        if r.returncode != 0:
            raise harness.Failure("image pack: " + r.stderr)

    def process(self, name, args):
        p = json.loads(json.dumps(self.specs[name]["process"]))
        p["args"] = args
        return p


def first(msg, n, default=None):
    v = msg.get(n)
    return v[0] if v else default


def read_all(c, cid, eid="", timeout_s=30):
    out = b""
    while True:
        d = first(c.call("ReadStdout", container_id=cid, exec_id=eid, len=65536,
                         timeout_s=timeout_s), 1, b"")
        if not d:
            return out
        out += d


def expect_denied(t, fn, what):
    import test_agent
    try:
        fn()
    except test_agent.RpcError as e:
        t.eq(e.code, PERMISSION_DENIED, what + " (" + e.message + ")")
        t.check("denied" in e.message, what + ": explanation", e.message)
        return
    raise AssertionError(what + ": call succeeded, expected PERMISSION_DENIED")


def check_evidence(t, out, pod, sim_root):
    """out: the endpoint's JSON answer; the report must verify against the
    sim root, bind the runtime data and carry the policy's hash."""
    import base64
    ev = json.loads(out)
    t.eq(ev["tee"], "sim", "evidence tee")
    want_rd = hashlib.sha512(RUNTIME_DATA).hexdigest()
    t.eq(ev["report_data"], want_rd, "report_data = sha512(runtime_data)")
    rep, certs = t.path("evidence-report.bin"), t.path("evidence-certs.bin")
    with open(rep, "wb") as f:
        f.write(base64.b64decode(ev["attestation_report"]))
    t.check(ev["cert_chain"], "the sim PSP's certificates", ev)
    with open(certs, "wb") as f:
        f.write(base64.b64decode(ev["cert_chain"]))
    base = [t.prog("sealpod"), "verify", "--report", rep, "--certs", certs, "--allow-sim",
            "--sim-root", sim_root, "--expect-host-data", pod.host_data]
    r = t.run(base + ["--expect-report-data", want_rd])
    t.eq(r.returncode, 0, "sealpod verify of the workload's evidence: " + r.stderr)
    claims = json.loads(r.stdout)
    t.eq(claims["host_data"], pod.host_data, "HOST_DATA = the policy's hash")
    # The check can fail: other runtime data does not verify.
    r = t.run(base + ["--expect-report-data", hashlib.sha512(b"other").hexdigest()])
    t.check(r.returncode != 0, "other REPORT_DATA refused", r.stdout)


def run(t, c, pod, store_source, slow=1, sim_root=None, during=None):
    """The pod's life over a connected test_agent.Client `c`. slow scales
    the deadlines (TCG). With sim_root (the sim PSP's ark.pem) the reader
    fetches evidence from the attestation endpoint, verified against it.
    during(), if given, runs while both containers are up."""
    c.call("SetPolicy", policy=pod.policy.decode(), timeout_s=30 * slow)
    c.call("CreateSandbox", hostname=HOSTNAME, sandbox_id="pod2", pod_name="pod2",
           pod_namespace="default", dns=[DNS],
           storages=[{"driver": "oci-store", "source": store_source}], timeout_s=30 * slow)
    for cid, name in (("w", "writer"), ("r", "reader")):
        c.call("CreateContainer", container_id=cid, container_name=name, image=pod.image,
               oci_spec=pod.specs[name], timeout_s=120 * slow)
        c.call("StartContainer", container_id=cid, timeout_s=30 * slow)
    t.eq(first(c.call("ReadStdout", container_id="w", len=100, timeout_s=60 * slow), 1),
         b"written\n", "writer's output")
    # The reader sees the writer's file through the shared emptyDir, the
    # pod's hostname (UTS namespace) and resolv.conf, and /dev/shm.
    c.call("ExecProcess", container_id="r", exec_id="look",
           process=pod.process("reader", READER_EXEC), timeout_s=30 * slow)
    out = read_all(c, "r", "look", timeout_s=30 * slow)
    t.eq(out.decode(), "hello\n%s\n%s\n/dev/shm\n" % (HOSTNAME, DNS), "reader's view")
    t.eq(first(c.call("WaitProcess", container_id="r", exec_id="look", timeout_s=30 * slow), 1, 0),
         0, "exec status")
    if sim_root:
        c.call("ExecProcess", container_id="r", exec_id="ev",
               process=pod.process("reader", EVIDENCE_EXEC), timeout_s=30 * slow)
        out = read_all(c, "r", "ev", timeout_s=30 * slow)
        t.eq(first(c.call("WaitProcess", container_id="r", exec_id="ev",
                          timeout_s=30 * slow), 1, 0), 0, "wget status")
        check_evidence(t, out, pod, sim_root)
    # Issue 19.1 and 19.3, wherever the agent runs: a spec without
    # capabilities, or joining the agent's own network namespace, is
    # refused; the reader's exec runs with exactly the policy's sets.
    nocaps = json.loads(json.dumps(pod.specs["reader"]))
    del nocaps["process"]["capabilities"]
    expect_denied(t, lambda: c.call("CreateContainer", container_id="x1", container_name="reader",
                                    image=pod.image, oci_spec=nocaps, timeout_s=30 * slow),
                  "a spec without process.capabilities")
    agentns = json.loads(json.dumps(pod.specs["reader"]))
    for n in agentns["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = "/proc/1/ns/net"
    expect_denied(t, lambda: c.call("CreateContainer", container_id="x2", container_name="reader",
                                    image=pod.image, oci_spec=agentns, timeout_s=30 * slow),
                  "the agent's network namespace")
    c.call("ExecProcess", container_id="r", exec_id="caps",
           process=pod.process("reader", CAPS_EXEC), timeout_s=30 * slow)
    out = read_all(c, "r", "caps", timeout_s=30 * slow).decode()
    for cap in ("CapEff", "CapPrm", "CapBnd"):
        t.check("%s:\t%s" % (cap, DEFAULT_CAPS) in out, cap + " = the policy's", out)
    t.check("CapAmb:\t0000000000000000" in out, "no ambient capabilities", out)
    if during:
        during()
    expect_denied(t, lambda: c.call("ExecProcess", container_id="r", exec_id="evil",
                                    process=pod.process("reader", ["/bin/sh", "-c", "id"])),
                  "exec outside the policy")
    expect_denied(t, lambda: c.call("ReadStdout", container_id="r", len=10),
                  "reader's logs (not in the policy)")
    # Stats, processes and limits from the container's cgroup.
    st = c.call("StatsContainer", container_id="w", timeout_s=30 * slow)
    t.check(first(st, 4, 0) >= 1, "pids_current of the writer", st)
    t.check(first(st, 2, 0) > 0, "memory usage of the writer", st)
    pl = json.loads(first(c.call("ListProcesses", container_id="w", format="json"), 1, b"[]"))
    t.check(len(pl) >= 1, "writer's processes", pl)
    c.call("UpdateContainer", container_id="w", resources={"pids": {"limit": 64}})
    for cid in ("w", "r"):
        c.call("RemoveContainer", container_id=cid, timeout=1, timeout_s=60 * slow)
    c.call("DestroySandbox", timeout_s=60 * slow)
