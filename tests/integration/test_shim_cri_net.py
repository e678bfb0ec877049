"""Pod networking on the CRI path (docs/network.md): a real containerd with
CRI and Debian's CNI plugins (bridge, host-local, loopback, portmap), all
inside a network namespace this test makes (containerd runs in it, so the
bridge, the pods' veths and portmap's iptables rules live and die there).
A runc pod and a confidential pod (sealpod, one TCG UVM) share the bridge:

- the confidential pod's busybox httpd answers at its pod IP from the host
  side (the test's namespace);
- the runc pod reaches it (ExecSync wget), and it reaches the runc pod (its
  container fetches the runc pod's page at start, the log shows it);
- a hostPort reaches it through portmap;
- the guest got CRI's DNSConfig as resolv.conf, and the pod's hostname;
- after the pods are gone: no tap, no qdisc, no pod namespace left;
- the guest pulls a pod's image (by the policy's digest) from a TLS
  registry on the bridge's gateway address, through the pod's interface,
  trusting the CA the policy pins (runtime handler "sealpodreg"); a
  loopback registry is refused for a CNI pod;
- a pod whose env var is a sealed secret gets the secret from sealpod-kbs
  on the bridge's gateway (the agent dials from the pod's namespace) while
  containerd, the logs and CRI hold only the sealed form; a broker that
  refuses the pod's report fails the container with a CRI error naming the
  variable and the resource.

All traffic stays inside the test's namespaces."""
import json
import os
import re
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cri"))

import harness  # noqa: E402
import shimtest  # noqa: E402

NEEDS_ROOT = True
SANITIZE = True
IMAGE = "docker.io/library/sp-web:1"
PAUSE = "docker.io/library/sp-pause:1"
NS = "k8s.io"
SUBNET, GATEWAY = "10.88.7.0/24", "10.88.7.1"
HOST_PORT = 18080

NET_CONF = {
    "cniVersion": "1.0.0", "name": "sptest",
    "plugins": [
        {"type": "bridge", "bridge": "spbr0", "isGateway": True, "ipMasq": False,
         "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": None}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}

RUNC_RUNTIME = '''    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sealpodreg]
      runtime_type = "%(runtime)s"
      pod_annotations = ["io.sealpod.*"]
      container_annotations = ["io.sealpod.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sealpodreg.options]
        ConfigPath = "%(config)s"
  [plugins."io.containerd.grpc.v1.cri".cni]'''


def sh(*argv, check=True, timeout=60):
    r = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise harness.Failure("%s: %s%s" % (" ".join(argv), r.stdout, r.stderr))
    return r


class NetContainerd(shimtest.Containerd):
    """containerd inside namespace `netns`, CNI from /usr/lib/cni, a runc
    runtime next to sealpod's."""

    def __init__(self, base, build, netns, env, reg_config):
        super().__init__(base, build, env=env, pause=PAUSE)
        self.netns = netns
        with open(self.config) as f:
            text = f.read()
        text = text.replace('  [plugins."io.containerd.grpc.v1.cri".cni]', RUNC_RUNTIME % {
            "runtime": shimtest.RUNTIME, "config": reg_config})
        text = text.replace('bin_dir = "%s/cni-bin"' % self.root, 'bin_dir = "/usr/lib/cni"')
        # runc pods: this host lets no process lower its oom_score_adj
        # (pause asks for -998); containerd then keeps it at its own.
        text = text.replace('  disable_tcp_service = true',
                            '  disable_tcp_service = true\n  restrict_oom_score_adj = true')
        with open(self.config, "w") as f:
            f.write(text)
        conf = json.loads(json.dumps(NET_CONF))
        conf["plugins"][0]["ipam"]["dataDir"] = os.path.join(base, "ipam")
        os.makedirs(os.path.join(self.root, "cni-conf"), exist_ok=True)
        with open(os.path.join(self.root, "cni-conf", "10-sptest.conflist"), "w") as f:
            json.dump(conf, f)

    def start(self, spawn):
        real = spawn

        def in_netns(argv, **kw):
            return real(["nsenter", "--net=/run/netns/" + self.netns] + argv, **kw)
        super().start(in_netns)


def setup_module(m):
    shimtest.require_modules(harness)
    try:
        import cri  # noqa: F401
    except ImportError as e:
        raise harness.Skip("CRI client needs python3-grpcio and python3-protobuf: %s" % e)
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        if not os.path.exists("/usr/lib/cni/" + plugin):
            raise harness.Skip("CNI plugin %s missing (Debian's containernetworking-plugins)"
                               % plugin)
    build = harness.build_dir()
    plain = os.path.join(harness.ROOT, "build")
    m.guest = shimtest.guest_image(plain if os.path.exists(os.path.join(plain, "sealpod-agent"))
                                   else build)
    # The examples' busybox image (the one `sealpod run`'s httpd test
    # serves from), named for containerd.
    m.layout = m.path("layout")
    r = subprocess.run([os.path.join(harness.ROOT, "scripts", "example-images"), m.layout],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise harness.Failure("example images: " + r.stdout)
    with open(os.path.join(m.layout, "index.json")) as f:
        index = json.load(f)
    index["manifests"][0]["annotations"] = {"io.containerd.image.name": IMAGE,
                                            "org.opencontainers.image.ref.name": "1"}
    with open(os.path.join(m.layout, "index.json"), "w") as f:
        json.dump(index, f)
    m.image_tar = m.path("image.tar")
    shimtest.tar_layout(m.layout, m.image_tar)
    pause_layout = m.path("pause-layout")
    shimtest.make_image_layout(pause_layout, PAUSE, cmd=["/bin/sleep", "100000"])
    pause_tar = m.path("pause.tar")
    shimtest.tar_layout(pause_layout, pause_tar)
    with open(os.path.join(m.guest, "cmdline")) as f:
        cmdline = f.read().strip()
    m.runtime_config = m.path("runtime.json")
    with open(m.runtime_config, "w") as f:
        json.dump({"backend": "vm", "kernel": os.path.join(m.guest, "vmlinuz"),
                   "initrd": os.path.join(m.guest, "initrd.img"), "kernel_cmdline": cmdline,
                   "accel": "tcg", "tee": "sim", "memory_mib": 512, "image_store": m.image_tar,
                   "state_dir": m.path("run"), "boot_timeout_s": 300, "log_level": "debug"}, f)
    m.netns = "sp-crinet-%d" % os.getpid()
    sh("ip", "netns", "add", m.netns)
    m.cleanup(lambda: subprocess.run(["ip", "netns", "del", m.netns]))
    sh("ip", "-n", m.netns, "link", "set", "lo", "up")
    # Runtime handler "sealpodreg": the configuration the registry test
    # writes (the shim reads it at each pod's start).
    m.reg_config = m.path("runtime-reg.json")
    m.cd = NetContainerd(m.path("cd"), build, m.netns, env={
        "SEALPOD_CONFIG": m.runtime_config,
        "SEALPOD_SIM_STATE": m.path("sim"),
        "SEALPOD_SHIM_LOG": m.path("shim.log"),
    }, reg_config=m.reg_config)
    m.cd.start(m.spawn)
    m.cleanup(m.cd.stop)
    m.cd.ctr(["image", "import", m.image_tar], ns=NS)
    m.cd.ctr(["image", "import", pause_tar], ns=NS)


def in_ns(m, *argv, check=True, timeout=60):
    return sh("nsenter", "--net=/run/netns/" + m.netns, *argv, check=check, timeout=timeout)


def diag(m):
    try:
        with open(m.path("shim.log")) as f:
            shim = "".join(l[:300] for l in f.readlines() if "pod network" in l or
                           "error" in l.lower() or "warn" in l.lower())[-4000:]
    except OSError:
        shim = "(no shim log)"
    out = ["shim log:", shim]
    import glob
    for cmd in (["busybox", "ping", "-c", "2", "-W", "3", "10.88.7.3"],
                ["curl", "-sS", "-m", "5", "http://10.88.7.3:8080/index.html"],
                ["ip", "neigh"], ["ip", "route"]):
        r = in_ns(m, *cmd, check=False)
        out += [" ".join(cmd), r.stdout + r.stderr]
    for lg in glob.glob(m.path("logs", "*.log")):
        out += [lg, open(lg, errors="replace").read()[-1500:]]
    out += ["run dir: %r" % glob.glob(m.path("run", "*", "*"))]
    for con in glob.glob(m.path("run", "*", "vm", "console.log")):
        out += ["console " + con, open(con, errors="replace").read()[-3000:]]
    for ns in sh("ip", "netns", "list").stdout.split():
        if ns.startswith("cni-"):
            for cmd in (["ip", "-n", ns, "-d", "link"], ["ip", "-n", ns, "addr"],
                        ["tc", "-n", ns, "-s", "filter", "show", "dev", "eth0", "ingress"],
                        ["tc", "-n", ns, "-s", "filter", "show", "dev", "sptap0", "ingress"]):
                out += [" ".join(cmd), sh(*cmd, check=False).stdout]
    return "\n".join(out)


def pod_config(name, logdir, annotations=None, ports=()):
    import cri
    return cri.msg(
        "PodSandboxConfig",
        metadata=cri.msg("PodSandboxMetadata", name=name, namespace="default",
                         uid=str(uuid.uuid4()), attempt=0),
        hostname=name, log_directory=logdir, annotations=annotations or {},
        dns_config=cri.msg("DNSConfig", servers=["10.88.7.53"], searches=["svc.test"],
                           options=["ndots:2"]),
        port_mappings=[cri.msg("PortMapping", protocol=0, container_port=c, host_port=h)
                       for c, h in ports],
        linux=cri.msg("LinuxPodSandboxConfig", security_context=cri.msg(
            "LinuxSandboxSecurityContext",
            namespace_options=cri.msg("NamespaceOption", network=cri.POD))))


def container_config(name, command, log):
    import cri
    return cri.msg("ContainerConfig", metadata=cri.msg("ContainerMetadata", name=name),
                   image=cri.msg("ImageSpec", image=IMAGE), command=command, log_path=log)


WEB = "mkdir -p /tmp/www; echo %(text)s > /tmp/www/index.html; "
SERVE = "exec /bin/busybox httpd -f -p 8080 -h /tmp/www"

CONF_POD = """apiVersion: v1
kind: Pod
metadata:
  name: confweb
  namespace: default
  annotations:
    io.sealpod.policy/logs: "*"
    io.sealpod.policy/exec: '{"web": [["cat", "/etc/resolv.conf"], ["hostname"]]}'
spec:
  automountServiceAccountToken: false
  containers:
  - name: web
    image: %(image)s
    command: ["sh", "-c", "%(cmd)s"]
"""


def wait(what, fn, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 (retrying)
            last = e
        time.sleep(1)
    raise harness.Failure("timed out waiting for %s (%s)" % (what, last))


def test_confidential_pod_on_a_cni_bridge(t):
    import cri
    m = t.module
    rs = cri.RuntimeService(m.cd.sock)
    t.cleanup(rs.close)
    logdir = m.path("logs")
    os.makedirs(logdir, exist_ok=True)
    pods = []

    def remove_pods():
        for sid in pods:
            for fn in (rs.stop_pod_sandbox, rs.remove_pod_sandbox):
                try:
                    fn(sid)
                except Exception:  # noqa: BLE001 (best effort)
                    pass
    t.cleanup(remove_pods)

    # The runc pod: a page the confidential pod fetches.
    rconf = pod_config("runcweb", logdir)
    try:
        rsid = rs.run_pod_sandbox(rconf, "runc")
    except Exception as e:
        raise harness.Failure("RunPodSandbox (runc): %s\n%s" % (e, diag(m)))
    pods.append(rsid)
    rip = rs.pod_sandbox_status(rsid).network.ip
    t.check(rip.startswith("10.88.7."), "the runc pod has a bridge address", rip)
    rcid = rs.create_container(rsid, container_config(
        "web", ["sh", "-c", WEB % {"text": "runc-pod"} + SERVE], "runc-web.log"),
        rconf)
    rs.start_container(rcid)

    # The confidential pod: its policy is generated for this command.
    cmd = (WEB % {"text": "confidential-pod"} +
           "(until /bin/busybox wget -q -O - http://%s:8080/index.html; do sleep 1; done) & "
           % rip + SERVE)
    yaml = CONF_POD % {"image": IMAGE, "cmd": cmd}
    policy = shimtest.policy_for(harness.build_dir(), yaml, m.layout, m.tmp)
    cconf = pod_config("confweb", logdir, {"io.sealpod.policy": policy},
                       ports=[(8080, HOST_PORT)])
    try:
        csid = rs.run_pod_sandbox(cconf, "sealpod")
    except Exception as e:
        raise harness.Failure("RunPodSandbox: %s\n%s" % (e, diag(m)))
    pods.append(csid)
    cip = rs.pod_sandbox_status(csid).network.ip
    t.check(cip.startswith("10.88.7.") and cip != rip, "the confidential pod's IP", cip)
    try:
        ccid = rs.create_container(csid, container_config("web", ["sh", "-c", cmd], "conf-web.log"),
                                   cconf)
        rs.start_container(ccid)
    except Exception as e:
        raise harness.Failure("confidential container: %s\n%s" % (e, diag(m)))

    # Host side (the test's namespace) -> the pod's IP.
    try:
        page = wait("the confidential pod's page at %s" % cip, lambda: in_ns(
            m, "curl", "-sS", "-m", "5", "http://%s:8080/index.html" % cip,
            check=False).stdout, 240)
    except harness.Failure as e:
        raise harness.Failure("%s\n%s" % (e, diag(m)))
    t.eq(page.strip(), "confidential-pod", "host -> pod IP")
    # runc pod -> confidential pod.
    # (busybox nc: busybox-static's wget crashes on this host's kernel.)
    r = rs.exec_sync(rcid, ["sh", "-c", "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | "
                            "/bin/busybox nc %s 8080" % cip])
    t.check(r.exit_code == 0 and "200 OK" in r.stdout.decode() and
            "confidential-pod" in r.stdout.decode(), "runc pod -> pod",
            (r.exit_code, r.stdout, r.stderr))
    # confidential pod -> runc pod (its container's log).
    log = os.path.join(logdir, "conf-web.log")
    wait("the confidential pod's fetch of the runc pod's page",
         lambda: "runc-pod" in open(log).read(), 120)
    # hostPort through portmap (DNAT in the test namespace).
    page = wait("the hostPort", lambda: in_ns(
        m, "curl", "-sS", "-m", "5", "http://%s:%d/index.html" % (GATEWAY, HOST_PORT),
        check=False).stdout, 60)
    t.eq(page.strip(), "confidential-pod", "hostPort -> pod")
    # DNS and hostname from CRI, as the workload sees them.
    r = rs.exec_sync(ccid, ["cat", "/etc/resolv.conf"])
    out = r.stdout.decode()
    t.check("nameserver 10.88.7.53" in out and "search svc.test" in out, "resolv.conf", out)
    r = rs.exec_sync(ccid, ["hostname"])
    t.eq(r.stdout.decode().strip(), "confweb", "hostname")

    # The CNI netns of the confidential pod holds QEMU's tap and the qdiscs.
    # This test's pod namespaces: those whose veth's peer is in the test's
    # namespace (other runs on this machine have CNI namespaces of their own).
    netns_paths = [n for n in sh("ip", "netns", "list").stdout.split()
                   if n.startswith("cni-") and re.search(
                       r"link-netns %s\b" % re.escape(m.netns),
                       sh("ip", "-n", n, "-o", "link", check=False).stdout)]
    t.eq(len(netns_paths), 2, "two pod namespaces on the test's subnet")
    for sid in (csid, rsid):
        rs.stop_pod_sandbox(sid)
        rs.remove_pod_sandbox(sid)
    pods.clear()
    left = shimtest.wait_gone(m.tmp, 60)
    t.check(not left, "no shim, QEMU or agent left", left)
    now = sh("ip", "netns", "list").stdout.split()
    t.check(not [n for n in netns_paths if n in now], "the pods' namespaces are gone",
            (netns_paths, now))
    links = in_ns(m, "ip", "-o", "link").stdout
    t.check("sptap" not in links and "veth" not in links, "no tap or veth left", links)
    qd = in_ns(m, "tc", "qdisc", "show").stdout
    t.check("ingress" not in qd, "no ingress qdisc left", qd)


REG_POD = """apiVersion: v1
kind: Pod
metadata:
  name: regweb
  namespace: default
  annotations:
    io.sealpod.policy/logs: "*"
spec:
  automountServiceAccountToken: false
  containers:
  - name: web
    image: %(image)s
    command: ["sh", "-c", "%(cmd)s"]
"""


def test_guest_pulls_from_a_registry_on_the_bridge(t):
    """The guest pulls the pod's image by the policy's digest from a TLS
    registry at the bridge's gateway address (in the test's namespace),
    through the pod's CNI interface, trusting only the CA the policy pins
    for that registry. A loopback registry is refused for a CNI pod."""
    import base64
    import cri
    import images
    m = t.module
    rs = cri.RuntimeService(m.cd.sock)
    t.cleanup(rs.close)
    logdir = m.path("logs")
    os.makedirs(logdir, exist_ok=True)
    # The bridge CNI makes (the plugin takes it as it is): it must exist,
    # with the gateway's address, before the registry listens there.
    if in_ns(m, "ip", "link", "show", "spbr0", check=False).returncode != 0:
        in_ns(m, "ip", "link", "add", "spbr0", "type", "bridge")
        in_ns(m, "ip", "addr", "add", GATEWAY + "/24", "dev", "spbr0")
        in_ns(m, "ip", "link", "set", "spbr0", "up")
    pki = images.make_pki(t.path("pki"), ips=(GATEWAY,), name="bridge")
    reg = images.Registry(t, tls=pki, netns=m.netns, addr=GATEWAY)
    pushed = reg.push(m.layout, "1", "library/sp-web:1")
    url = "https://" + reg.host

    with open(m.runtime_config) as f:
        base_cfg = json.load(f)
    base_cfg.pop("image_store")
    base_cfg["content_store"] = None  # no host-pulled image disk either

    def write_cfg(registry):
        with open(m.reg_config, "w") as f:
            json.dump(dict(base_cfg, registry=registry), f)

    pods = []

    def remove_pods():
        for sid in pods:
            for fn in (rs.stop_pod_sandbox, rs.remove_pod_sandbox):
                try:
                    fn(sid)
                except Exception:  # noqa: BLE001 (best effort)
                    pass
    t.cleanup(remove_pods)

    # The policy: generated against the registry (from the test's
    # namespace, where the bridge is), pinning its CA for it.
    cmd = WEB % {"text": "pulled-over-the-bridge"} + SERVE
    src = t.path("regweb.yaml")
    with open(src, "w") as f:
        f.write(REG_POD % {"image": IMAGE, "cmd": cmd})
    r = in_ns(m, harness.prog("sealpod"), "policy", "gen", src, "--registry", url,
              "--registry-ca", pki["ca"], "--output", src + ".gen", check=False, timeout=120)
    t.check(r.returncode == 0, "sealpod policy gen --registry --registry-ca", r.stderr)
    import yaml
    with open(src + ".gen") as f:
        pod = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "Pod"][0]
    policy = pod["metadata"]["annotations"]["io.sealpod.policy"]
    doc = json.loads(base64.b64decode(policy))
    t.eq([e["host"] for e in doc.get("registries", [])], [reg.host],
         "the policy lists the bridge registry as the guest reaches it")
    t.check(pushed in json.dumps(doc), "the policy pins the digest the registry holds",
            (pushed, json.dumps(doc)[:600]))

    # A loopback registry cannot serve a pod on a CNI network: refused,
    # saying why, before any UVM.
    write_cfg("http://127.0.0.1:5000")
    conf = pod_config("regweb", logdir, {"io.sealpod.policy": policy})
    try:
        sid = rs.run_pod_sandbox(conf, "sealpodreg")
        pods.append(sid)
        raise harness.Failure("a loopback registry for a CNI pod was accepted")
    except harness.Failure:
        raise
    except Exception as e:  # noqa: BLE001 (the gRPC error)
        t.check("cannot reach this host's loopback" in str(e),
                "loopback registry refused for a CNI pod", str(e)[:800])

    write_cfg(url)
    try:
        sid = rs.run_pod_sandbox(conf, "sealpodreg")
    except Exception as e:
        raise harness.Failure("RunPodSandbox: %s\n%s" % (e, diag(m)))
    pods.append(sid)
    ip = rs.pod_sandbox_status(sid).network.ip
    t.check(ip.startswith("10.88.7."), "the pod has a bridge address", ip)
    try:
        cid = rs.create_container(sid, container_config("web", ["sh", "-c", cmd], "reg-web.log"),
                                  conf)
        rs.start_container(cid)
    except Exception as e:
        raise harness.Failure("confidential container: %s\nregistry log:\n%s\n%s" % (
            e, open(reg.access_log, errors="replace").read()[-2000:], diag(m)))
    try:
        page = wait("the pod's page at %s" % ip, lambda: in_ns(
            m, "curl", "-sS", "-m", "5", "http://%s:8080/index.html" % ip,
            check=False).stdout, 240)
    except harness.Failure as e:
        raise harness.Failure("%s\n%s" % (e, diag(m)))
    t.eq(page.strip(), "pulled-over-the-bridge", "the pulled image runs")
    # The registry saw the guest (from the pod's IP) fetch the pinned
    # manifest and its blobs.
    with open(reg.access_log, errors="replace") as f:
        log = f.read()
    mine = [l for l in log.splitlines() if l.startswith(ip + " ")]
    t.check(any("/v2/library/sp-web/manifests/" + pushed in l and '" 200 ' in l for l in mine),
            "the guest fetched the pinned manifest from the pod's IP", log[-1500:])
    t.check(any("/v2/library/sp-web/blobs/sha256:" in l for l in mine),
            "the guest fetched the image's blobs", log[-1500:])

    rs.stop_pod_sandbox(sid)
    rs.remove_pod_sandbox(sid)
    pods.clear()
    left = shimtest.wait_gone(m.tmp, 60)
    t.check(not left, "no shim, QEMU or agent left", left)
    links = in_ns(m, "ip", "-o", "link").stdout
    t.check("sptap" not in links and "veth" not in links, "no tap or veth left", links)
    qd = in_ns(m, "tc", "qdisc", "show").stdout
    t.check("ingress" not in qd, "no ingress qdisc left", qd)
    mine_ns = [n for n in sh("ip", "netns", "list").stdout.split()
               if n.startswith("cni-") and re.search(
                   r"link-netns %s\b" % re.escape(m.netns),
                   sh("ip", "-n", n, "-o", "link", check=False).stdout)]
    t.check(not mine_ns, "no pod namespace left", mine_ns)


# A pod whose env var is a sealed secret (docs/agent.md "Sealed secrets"):
# `app` prints what it got (the first characters, the length and the
# SHA-256 of $SECRET, never the secret) and the SHA-256 of what the
# workload endpoint's /cdh/resource gives it for the same resource, after
# the start of /aa/token's answer (the broker dialed from the pod's
# namespace, docs/network.md), and the SHA-256 of the sealed Secret volume
# file it mounts (unsealed into its own copy of the volume). `late` is the
# same container, created after the broker's rule changed.
SEALED_CMD = ("echo \"env=`echo $SECRET | cut -c1-7` len=${#SECRET}\"; "
              "printf %s \"$SECRET\" | sha256sum; "
              "echo \"file=`sha256sum < /etc/creds/password`\"; "
              "echo \"token=`wget -q -O - 'http://127.0.0.1:8006/aa/token?token_type=kbs' | cut -c1-14`\"; "
              "echo \"cdh=`wget -q -O - http://127.0.0.1:8006/cdh/resource/r/t/k | sha256sum`\"; "
              "exec sleep 1000")
SEALED_POD = """apiVersion: v1
kind: Pod
metadata:
  name: sealedweb
  namespace: default
  annotations:
    io.sealpod.policy/logs: "*"
    io.sealpod.policy/sealed-files: '{"creds": {"password": ["r/t/k"]}}'
spec:
  automountServiceAccountToken: false
  volumes:
  - {name: creds, secret: {secretName: creds}}
  containers:
  - name: app
    image: %(image)s
    command: %(cmd)s
    env:
    - {name: SECRET, value: "%(sealed)s"}
    volumeMounts: [{name: creds, mountPath: /etc/creds, readOnly: true}]
  - name: late
    image: %(image)s
    command: %(cmd)s
    env:
    - {name: SECRET, value: "%(sealed)s"}
    volumeMounts: [{name: creds, mountPath: /etc/creds, readOnly: true}]
"""


def kubelet_secret_volume(root, uid, name, files):
    """A Secret volume as kubelet's atomic writer leaves it on the host:
    the files in a timestamped directory, ..data linking to it, each key a
    link through ..data. Returns its directory."""
    return shimtest.atomic_writer_dir(
        os.path.join(root, "pods", uid, "volumes", "kubernetes.io~secret", name), files)


def start_broker(t, m):
    """sealpod-kbs in the test's namespace on the bridge's gateway address
    (what a pod on the bridge reaches); admin calls go through curl there."""
    if in_ns(m, "ip", "link", "show", "spbr0", check=False).returncode != 0:
        in_ns(m, "ip", "link", "add", "spbr0", "type", "bridge")
        in_ns(m, "ip", "addr", "add", GATEWAY + "/24", "dev", "spbr0")
        in_ns(m, "ip", "link", "set", "spbr0", "up")
    token = "cri-sealed-admin-token-0123456789"
    tfile = t.path("admin.token")
    with open(tfile, "w") as f:
        f.write(token + "\n")
    out = open(t.path("kbs.out"), "w+")
    p = t.spawn(["nsenter", "--net=/run/netns/" + m.netns, harness.prog("sealpod-kbs"),
                 "--db", t.path("kbs.db"), "--listen", GATEWAY + ":0",
                 "--admin-token-file", tfile, "--log-level", "debug", "--allow-sim",
                 "--sim-root", m.path("sim", "ark.pem")],
                stdout=out, stderr=open(t.path("kbs.err"), "w"))
    deadline = time.time() + 30
    while True:
        out.seek(0)
        mm = re.search(r"listening on (http://[0-9.]+:\d+)", out.read())
        if mm:
            break
        if p.poll() is not None or time.time() > deadline:
            raise harness.Failure("sealpod-kbs did not start: " + open(t.path("kbs.err")).read())
        time.sleep(0.05)
    url = mm.group(1)

    def admin(method, path, body):
        r = subprocess.run(["nsenter", "--net=/run/netns/" + m.netns, "curl", "-sS", "-m", "30",
                            "-o", "/dev/null", "-w", "%{http_code}", "-X", method,
                            "-H", "Authorization: Bearer " + token, "--data-binary", "@-",
                            url + path], input=body, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if r.stdout != b"200":
            raise harness.Failure("broker admin %s %s: %r %r" % (method, path, r.stdout, r.stderr))
    return url, admin


def _files_holding(roots, needle):
    held = []
    for root in roots:
        paths = [root] if os.path.isfile(root) else [
            os.path.join(d, fn) for d, _, files in os.walk(root) for fn in files]
        for path in paths:
            if os.path.islink(path) or not os.path.isfile(path):
                continue  # sockets, FIFOs (an open would block)
            try:
                with open(path, "rb") as f:
                    if needle in f.read():
                        held.append(path)
            except OSError:
                pass
    return held


def test_sealed_env_through_cri(t):
    """A CNI pod (containerd's CRI, the shim, a TCG UVM, the sim TEE) whose
    env var is a sealed secret: the agent unseals it from sealpod-kbs on
    the bridge's gateway, dialing from the pod's namespace through the
    pod's interface (no registry: the image comes on a disk). The
    container's log shows the secret's hash; containerd's root and state,
    the log files, the shim's state and log and CRI's verbose
    ContainerStatus hold only the sealed form. The workload endpoint's
    /aa/token and /cdh/resource in the same pod reach the broker over the
    pod's network too (before, the agent dialed from its own namespace, which
    has no route once the pod holds the device: 502). A Secret volume
    whose key the policy marks sealed (kubelet's layout, copied in by
    CopyFile in the sealed form) reaches the container unsealed in its own
    copy of the volume. With the broker's
    rule naming another HOST_DATA, a second container of the pod does not
    start, and CRI's error names the variable, the resource and the
    broker's 403."""
    import hashlib
    import base64
    import cri
    m = t.module
    s = harness.prog("sealpod")
    secret = b"cri-sealed-secret-5d1e"
    # The shim's sim PSP state (its keys: the broker trusts its root).
    t.run([s, "sim-psp", "--state", m.path("sim"), "--measurement", "00" * 48,
           "--out", t.path("warm.bin")], check=True, timeout=300)
    url, admin = start_broker(t, m)
    sealed = t.run([s, "kbs", "seal", "kbs:///r/t/k"], check=True).stdout.strip()
    src = t.path("sealed.yaml")
    with open(src, "w") as f:
        f.write(SEALED_POD % {"image": IMAGE, "cmd": json.dumps(["sh", "-c", SEALED_CMD]),
                              "sealed": sealed})
    r = t.run([s, "policy", "gen", src, "--image-dir", m.layout, "--kbs", url,
               "--print-hash", "--output", src + ".gen"])
    t.eq(r.returncode, 0, "policy gen: " + r.stderr)
    host_data = r.stdout.split()[-1]
    import yaml
    with open(src + ".gen") as f:
        pod = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "Pod"][0]
    policy = pod["metadata"]["annotations"]["io.sealpod.policy"]
    t.check('"sealed"' in base64.b64decode(policy).decode(), "the policy marks SECRET sealed")
    admin("POST", "/kbs/v0/resource/r/t/k", secret)

    def rule(hd):
        admin("POST", "/kbs/v0/resource-policy", json.dumps(
            {"path": "r/t/k", "rule": {"host_data": [hd]}}).encode())
    rule(host_data)

    rs = cri.RuntimeService(m.cd.sock)
    t.cleanup(rs.close)
    logdir = m.path("logs")
    os.makedirs(logdir, exist_ok=True)
    conf = pod_config("sealedweb", logdir, {"io.sealpod.policy": policy})
    sids = []

    def remove_pods():
        for sid in sids:
            cri.remove_pod_quietly(rs, sid)
    t.cleanup(remove_pods)
    try:
        sid = rs.run_pod_sandbox(conf, "sealpod")
    except Exception as e:
        raise harness.Failure("RunPodSandbox: %s\n%s" % (e, diag(m)))
    sids.append(sid)
    ip = rs.pod_sandbox_status(sid).network.ip
    t.check(ip.startswith("10.88.7."), "the pod has a bridge address", ip)

    # The Secret volume holds the sealed form (the same resource).
    creds = kubelet_secret_volume(t.path("kubelet"), conf.metadata.uid, "creds",
                                  {"password": sealed + "\n"})

    def config(name):
        return cri.msg("ContainerConfig", metadata=cri.msg("ContainerMetadata", name=name),
                       image=cri.msg("ImageSpec", image=IMAGE),
                       command=["sh", "-c", SEALED_CMD], log_path="sealed-%s.log" % name,
                       envs=[cri.msg("KeyValue", key="SECRET", value=sealed)],
                       mounts=[cri.msg("Mount", container_path="/etc/creds", host_path=creds,
                                       readonly=True)])
    try:
        cid = rs.create_container(sid, config("app"), conf)
        rs.start_container(cid)
    except Exception as e:
        raise harness.Failure("sealed container: %s\nbroker: %s\n%s" % (
            e, open(t.path("kbs.err"), errors="replace").read()[-1500:], diag(m)))
    log = os.path.join(logdir, "sealed-app.log")
    digest = hashlib.sha256(secret).hexdigest()
    want = "env=%s len=%d" % (secret[:7].decode(), len(secret))
    wait("the container's output", lambda: "cdh=" in open(log).read(), 180)
    out = open(log).read()
    t.check(want in out and digest in out, "the container saw the unsealed secret", out)
    t.check("cdh=" + digest in out,
            "/cdh/resource in the pod fetched the resource over the pod's network", out)
    t.check('token={"tee_keypair' in out, "/aa/token in the pod got the broker's token", out)
    t.check("file=" + digest in out,
            "the sealed Secret volume file was unsealed in the container's copy", out)
    st = rs.container_status_verbose(cid)
    t.eq(st.status.state, cri.CONTAINER_RUNNING, "app is running")
    info = "".join(st.info.values())
    t.check(sealed in info, "CRI's verbose status shows the sealed form", info[:2000])
    t.check(secret.decode() not in info, "CRI's verbose status holds no secret")
    held = _files_holding([m.path("cd"), m.path("run"), logdir, m.path("shim.log"),
                           t.path("kubelet")], secret)
    t.eq(held, [], "no file of containerd, the shim or the logs holds the secret")
    t.check(_files_holding([m.path("cd")], sealed.encode()),
            "containerd's files hold the sealed form")

    # The broker now releases r/t/k only to another pod policy.
    rule(hashlib.sha256(b"another pod's policy").hexdigest())
    late = rs.create_container(sid, config("late"), conf)
    try:
        rs.start_container(late)
        raise harness.Failure("a container whose secret the broker refused started")
    except harness.Failure:
        raise
    except Exception as e:  # noqa: BLE001 (the gRPC error)
        msg = str(e)
        t.check("SECRET" in msg and "r/t/k" in msg and "403" in msg,
                "the CRI error names the variable, the resource and the broker's answer", msg)
        t.check(secret.decode() not in msg, "the error holds no secret", msg)
    t.check(rs.container_status(late).state != cri.CONTAINER_RUNNING, "late is not running")
    t.eq(_files_holding([m.path("cd"), m.path("run"), logdir, m.path("shim.log")], secret), [],
         "still no file holds the secret")

    rs.stop_pod_sandbox(sid)
    rs.remove_pod_sandbox(sid)
    sids.clear()
    left = shimtest.wait_gone(m.tmp, 60)
    t.check(not left, "no shim, QEMU or agent left", left)
