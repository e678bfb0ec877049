"""The agent's pod network (UpdateInterface, UpdateRoutes; docs/network.md)
in native mode: the agent runs in a network namespace the test made
(`ip netns exec`), holding one end of a veth pair whose other end sits in
a second test namespace. The agent moves its end into the pod's namespace
by MAC, names it, addresses it and routes through it with netlink; the
test checks what the kernel shows, that traffic flows between the
namespaces, that hostile descriptions are refused naming what was wrong,
that the policy ends network changes at the first container, and that
DestroySandbox leaves nothing behind. All traffic stays inside the test's
namespaces."""
import json
import os
import subprocess
import time

import harness
import test_agent as ta

SANITIZE = True
NEEDS_ROOT = True

MAC = "02:53:50:00:00:02"


def setup_module(m):
    ta.setup_module(m)


def sh(*argv):
    r = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise harness.Failure("%s: %s" % (" ".join(argv), r.stderr))
    return r.stdout


class Net:
    """Two namespaces: `agent` (where the agent runs, with veth end
    `spv-a` carrying MAC) and `peer` (the other end, 10.99.0.1/24 and
    fd99::1/64)."""

    def __init__(self, t):
        tag = "%d" % os.getpid()
        self.agent_ns, self.peer_ns = "sp-an-" + tag, "sp-pn-" + tag
        t.cleanup(self.remove)
        sh("ip", "netns", "add", self.agent_ns)
        sh("ip", "netns", "add", self.peer_ns)
        sh("ip", "-n", self.agent_ns, "link", "add", "spv-a", "address", MAC, "type", "veth",
           "peer", "name", "spv-p", "netns", self.peer_ns)
        sh("ip", "-n", self.peer_ns, "addr", "add", "10.99.0.1/24", "dev", "spv-p")
        sh("ip", "-n", self.peer_ns, "addr", "add", "fd99::1/64", "dev", "spv-p", "nodad")
        sh("ip", "-n", self.peer_ns, "link", "set", "spv-p", "up")
        sh("ip", "-n", self.agent_ns, "link", "set", "lo", "up")

    def remove(self):
        for ns in (self.agent_ns, self.peer_ns):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


class NetAgent:
    def __init__(self, t, net):
        self.t = t
        self.sock = t.path("agent.sock")
        self.state = t.path("state")
        # If the agent dies or hangs before DestroySandbox, its pod mounts
        # must not outlive the test (runs last: cleanups go in reverse).
        t.cleanup(lambda: subprocess.run(
            "grep -o ' %s/[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l"
            % self.state, shell=True))
        # nsenter, not `ip netns exec`: that one makes a mount namespace of
        # its own, where the agent's bind mounts would be invisible here.
        argv = ["nsenter", "--net=/run/netns/" + net.agent_ns, t.prog("sealpod-agent"),
                "--listen", "unix:" + self.sock, "--tee", "sim:" + ta.M.psp_good,
                "--state-dir", self.state, "--rootfs-dir", ta.M.rootfs,
                "--image-store", ta.M.layout, "--log-level", "debug"]
        self.log = t.path("agent.log")
        self.proc = t.spawn(argv, stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True)
        ready = self.proc.stdout.readline()
        t.check("ready" in ready, "agent ready line", open(self.log).read()[-3000:])
        self.c = ta.Client(self.sock)
        t.cleanup(self.c.close)
        self.c.call("SetPolicy", policy=ta.M.policy.decode())
        self.c.call("CreateSandbox", hostname="web", pod_name="web", pod_namespace="default",
                    sandbox_id="sb1", dns=["nameserver 10.99.0.1"])
        self.podns = os.path.join(self.state, "sandbox", "ns", "network")

    def pod(self, *argv):
        return sh("nsenter", "--net=" + self.podns, *argv)


def iface(name="eth0", mac=MAC, addrs=(("10.99.0.2", "24", 0),), mtu=1400, **extra):
    ips = [ta.pb((1, fam), (2, a), (3, m)) for a, m, fam in addrs]
    f = [(1, extra.get("device")), (2, name), (3, ips), (4, mtu), (5, mac),
         (7, extra.get("type")), (8, extra.get("raw_flags"))]
    return ta.pb((1, ta.pb(*f)))


def routes(*rs):
    """rs: dicts with dest, gateway, device, source, scope, family, flags."""
    num = {"dest": 1, "gateway": 2, "device": 3, "source": 4, "scope": 5, "family": 6,
           "flags": 7}
    return ta.pb((1, ta.pb((1, [ta.pb(*[(num[k], v) for k, v in r.items()]) for r in rs]))))


def call(a, method, payload):
    return a.c.call_raw(ta.AS, method, payload, 30)


def test_interface_routes_traffic_and_teardown(t):
    net = Net(t)
    a = NetAgent(t, net)
    r = call(a, "UpdateInterface", iface(addrs=(("10.99.0.2", "24", 0), ("fd99::2", "64", 1))))
    t.eq(ta.first(r, 2), b"eth0", "the answer is the interface")
    links = json.loads(a.pod("ip", "-j", "addr", "show", "dev", "eth0"))
    t.eq(links[0]["address"], MAC, "the device moved into the pod, by MAC")
    t.eq(links[0]["mtu"], 1400, "MTU")
    t.check("UP" in links[0]["flags"], "up", links)
    got = sorted((x["local"], x["prefixlen"]) for x in links[0]["addr_info"]
                 if x.get("scope") == "global")
    t.eq(got, [("10.99.0.2", 24), ("fd99::2", 64)], "addresses")
    agent_links = sh("ip", "-n", net.agent_ns, "-o", "link")
    t.check("spv-a" not in agent_links, "gone from the agent's namespace", agent_links)

    call(a, "UpdateRoutes", routes(
        {"dest": "10.98.0.0/16", "gateway": "10.99.0.1", "device": "eth0", "family": 0},
        {"dest": "", "gateway": "10.99.0.1", "device": "eth0", "family": 0},
        {"dest": "default", "gateway": "fd99::1", "device": "eth0", "family": 1}))
    rt = a.pod("ip", "route", "show")
    t.check("default via 10.99.0.1 dev eth0" in rt and "10.98.0.0/16 via 10.99.0.1" in rt,
            "v4 routes", rt)
    rt6 = a.pod("ip", "-6", "route", "show")
    t.check("default via fd99::1 dev eth0" in rt6, "v6 default route", rt6)
    # Traffic both ways between the test's namespaces.
    sh("ip", "netns", "exec", net.peer_ns, "busybox", "ping", "-c", "1", "-W", "5", "10.99.0.2")
    a.pod("busybox", "ping", "-c", "1", "-W", "5", "10.99.0.1")
    a.pod("busybox", "ping6", "-c", "1", "-W", "5", "fd99::1")
    # A second UpdateRoutes replaces the set.
    call(a, "UpdateRoutes", routes(
        {"dest": "", "gateway": "10.99.0.1", "device": "eth0", "family": 0}))
    rt = a.pod("ip", "route", "show")
    t.check("10.98.0.0/16" not in rt and "default via 10.99.0.1" in rt, "replaced", rt)
    t.check("nameserver 10.99.0.1" in open(os.path.join(a.state, "sandbox", "etc",
                                                        "resolv.conf")).read(), "DNS")

    # The policy: network changes end with the first container.
    spec = json.loads(json.dumps(ta.M.spec))
    a.c.call("CreateContainer", container_id="c1", oci_spec=spec, container_name="app",
             image=ta.images_name() + "@" + ta.M.digest)
    msg = ta.expect_code(t, ta.PERMISSION_DENIED,
                         lambda: call(a, "UpdateRoutes", routes()), "after CreateContainer")
    t.check("before the first container" in msg, "says why", msg)
    a.c.call("RemoveContainer", container_id="c1", timeout=5)
    a.c.call("DestroySandbox")
    t.check(not os.path.exists(a.podns), "the pod's namespace is gone")
    peer = sh("ip", "-n", net.peer_ns, "-o", "link")
    t.check("spv-p" not in peer, "the veth went with the pod's namespace", peer)


def test_hostile_descriptions_refused(t):
    net = Net(t)
    a = NetAgent(t, net)
    bad = [
        (iface(name="lo"), "not usable"),
        (iface(name="a" * 16), "not usable"),
        (iface(name="eth0;x"), "not usable"),
        (iface(mac="02:53:50:00:00:99"), "no network device with MAC"),
        (iface(mac="ff:ff:ff:ff:ff:ff"), "not a unicast MAC"),
        (iface(mac="zz"), "not a unicast MAC"),
        (iface(mtu=20), "outside 68..65535"),
        (iface(mtu=1000, addrs=(("fd99::2", "64", 1),)), "below IPv6's minimum"),
        (iface(addrs=(("127.0.0.2", "8", 0),)), "not a unicast address"),
        (iface(addrs=(("::1", "128", 1),)), "not a unicast address"),
        (iface(addrs=(("224.0.0.1", "24", 0),)), "not a unicast address"),
        (iface(addrs=(("10.99.0.2", "33", 0),)), "prefix length"),
        (iface(addrs=(("10.99.0.2", "0", 0),)), "prefix length"),
        (iface(addrs=(("10.99.0.2", "024", 0),)), "prefix length"),
        (iface(addrs=(("fd99::2", "24", 0),)), "not an IPv4 address"),
        (iface(type="veth"), "type and raw_flags"),
        (iface(addrs=tuple(("10.99.1.%d" % i, "24", 0) for i in range(1, 18))), "at most 16"),
    ]
    for payload, want in bad:
        try:
            call(a, "UpdateInterface", payload)
            raise AssertionError("accepted: %r" % payload)
        except ta.RpcError as e:
            t.check(want in e.message, "refusal names the problem (%s)" % want, e.message)
    t.check("spv-a" in sh("ip", "-n", net.agent_ns, "-o", "link"),
            "nothing moved by a refused request")
    msg = ta.expect_code(t, ta.INVALID_ARGUMENT,
                         lambda: call(a, "UpdateRoutes", routes(
                             {"dest": "", "gateway": "10.99.0.1", "device": "eth0"})),
                         "routes before any interface")
    t.check("not an interface of the pod" in msg, "says why", msg)
    call(a, "UpdateInterface", iface())
    bad_routes = [
        ({"dest": "127.0.0.0/8", "device": "eth0"}, "loopback"),
        ({"dest": "127.0.0.1/32", "device": "eth0"}, "loopback"),
        ({"dest": "::1/128", "device": "eth0", "family": 1}, "loopback"),
        ({"dest": "", "gateway": "10.99.0.1", "device": "lo"}, "never lo"),
        ({"dest": "", "gateway": "10.99.0.1", "device": "eth1"}, "not an interface of the pod"),
        ({"dest": "10.0.0.1/8", "device": "eth0"}, "bits set beyond"),
        ({"dest": "10.0.0.0/8", "gateway": "fd99::1", "device": "eth0"}, "gateway"),
        ({"dest": "", "gateway": "127.0.0.1", "device": "eth0"}, "gateway"),
        ({"dest": "10.0.0.0/8", "device": "eth0", "scope": 200}, "scope"),
        ({"dest": "10.0.0.0/8", "device": "eth0", "flags": 1}, "flags"),
        ({"dest": "224.0.0.0/4", "device": "eth0"}, "multicast"),
    ]
    for r, want in bad_routes:
        try:
            call(a, "UpdateRoutes", routes({"dest": "10.97.0.0/16", "device": "eth0"}, r))
            raise AssertionError("accepted: %r" % r)
        except ta.RpcError as e:
            t.check(want in e.message and "route 1" in e.message,
                    "route refusal names the route and the problem (%s)" % want, e.message)
    t.check("10.97.0.0" not in a.pod("ip", "route", "show"), "a refused set adds nothing")
    # A route the kernel refuses: unreachable gateway. Nothing of the set stays.
    try:
        call(a, "UpdateRoutes", routes({"dest": "10.97.0.0/16", "device": "eth0"},
                                       {"dest": "", "gateway": "10.50.0.1", "device": "eth0"}))
        raise AssertionError("unreachable gateway accepted")
    except ta.RpcError as e:
        t.check("route 1 (default via 10.50.0.1 dev eth0): add" in e.message, "names the route "
                "and the step", e.message)
    t.check("10.97.0.0" not in a.pod("ip", "route", "show"), "nothing half-configured")
    a.c.call("DestroySandbox")
