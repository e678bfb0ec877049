"""Registries named by DNS (issue 15), natively: the library's stub
resolver (src/lib/core/dns.c) asks the nameserver of a resolv.conf the
test writes (Debian's dnsmasq on 127.77.0.1:53, which it owns), and the
registry client reaches a TLS docker-registry by that name with a
certificate from a test CA. The guest runs the same code with the pod's
resolv.conf; the UVM's own network is the network work's (docs/images.md).

Also the bad inputs around names: an unknown name, a nameserver that does
not answer, a certificate for another name — each a clear error naming
the image and the step, and nothing unpacked."""
import os
import shutil
import subprocess
import time

import harness

NEEDS_ROOT = True
NS_IP = "127.77.0.1"
NAME = "registry.sealpod.test"


def setup_module(m):
    import images
    if not shutil.which("dnsmasq"):
        raise harness.Skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    m.pki = images.make_pki(m.path("pki"), ips=(), dns=(NAME,))
    m.reg = images.Registry(m, tls=m.pki)
    m.layout = images.busybox_layout()
    m.digest = m.reg.push(m.layout, images.TAG, "library/busybox:dns")
    m.dns_log = m.path("dnsmasq.log")
    m.dns = m.spawn(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                     "--no-hosts", "--listen-address=" + NS_IP, "--bind-interfaces",
                     "--port=53", "--pid-file=", "--user=root", "--log-queries",
                     "--log-facility=" + m.dns_log,
                     "--host-record=%s,127.0.0.1" % NAME,
                     "--cname=alias.sealpod.test,%s" % NAME,
                     "--address=/sealpod.test/"],
                    stdout=subprocess.DEVNULL, stderr=open(m.path("dnsmasq.err"), "w"))
    deadline = time.time() + 10
    while time.time() < deadline:
        r = subprocess.run(["ss", "-lun"], stdout=subprocess.PIPE, text=True)
        if "%s:53" % NS_IP in r.stdout:
            break
        if m.dns.poll() is not None:
            raise harness.Failure("dnsmasq exited: " + open(m.path("dnsmasq.err")).read())
        time.sleep(0.1)
    m.resolv = m.path("resolv.conf")
    with open(m.resolv, "w") as f:
        f.write("# the pod's\nsearch example.com\nnameserver %s\noptions timeout:2 attempts:1\n"
                % NS_IP)


def _pull(t, host, resolv=None, ca=None, dest="rootfs"):
    m = t.module
    argv = [t.prog("sealpod"), "image", "pull", "--from",
            "registry:https://%s:%d" % (host, m.reg.port), "--digest", m.digest]
    if resolv:
        argv += ["--resolv-conf", resolv]
    argv += ["--ca-file", ca or m.pki["ca"]]
    argv += ["%s/library/busybox:dns" % host, t.path(dest)]
    return t.run(argv, timeout=120)


def test_pull_by_name_through_the_stub_resolver(t):
    r = _pull(t, NAME, resolv=t.module.resolv)
    t.eq(r.returncode, 0, "pull by name with the test CA: " + r.stderr)
    t.check(os.path.exists(t.path("rootfs", "bin", "busybox")), "unpacked")
    with open(t.module.dns_log, errors="replace") as f:
        log = f.read()
    t.check("query[A] %s" % NAME in log, "the name was asked of the test's nameserver", log[-500:])


def test_c_library_resolver_does_not_know_the_name(t):
    """Without --resolv-conf the C library's resolver is used: it does not
    know the test's name, so the pull above did go through ours."""
    r = _pull(t, NAME)
    t.check(r.returncode != 0, "not found by the system resolver", r.stdout)
    t.check(NAME in r.stderr, "the error names the host", r.stderr)
    t.check(not os.path.exists(t.path("rootfs")), "nothing unpacked")


def test_unknown_name(t):
    r = _pull(t, "nosuch.sealpod.test", resolv=t.module.resolv)
    t.check(r.returncode != 0, "an unknown name fails", r.stdout)
    t.check("no such name" in r.stderr and "nosuch.sealpod.test" in r.stderr,
            "the error says the name does not exist", r.stderr)
    t.check("library/busybox" in r.stderr, "and names the image", r.stderr)
    t.check(not os.path.exists(t.path("rootfs")), "nothing unpacked")


def test_certificate_for_another_name(t):
    """alias.sealpod.test is a CNAME of the registry's name: DNS leads to
    the registry, but its certificate does not name the alias."""
    r = _pull(t, "alias.sealpod.test", resolv=t.module.resolv)
    t.check(r.returncode != 0, "refused", r.stdout)
    t.check("TLS to alias.sealpod.test failed" in r.stderr and "certificate" in r.stderr,
            "a TLS failure naming the host", r.stderr)
    t.check(not os.path.exists(t.path("rootfs")), "nothing unpacked")


def test_other_ca_refused(t):
    import images
    other = images.make_pki(t.path("other"), ips=(), dns=(NAME,), name="other")
    r = _pull(t, NAME, resolv=t.module.resolv, ca=other["ca"])
    t.check(r.returncode != 0, "refused", r.stdout)
    t.check("certificate is refused" in r.stderr, "a TLS failure", r.stderr)


def test_nameserver_silent(t):
    rc = t.path("silent.conf")
    with open(rc, "w") as f:
        f.write("nameserver 127.77.0.2\noptions timeout:1 attempts:1\n")
    start = time.time()
    r = _pull(t, NAME, resolv=rc)
    t.check(r.returncode != 0, "fails", r.stdout)
    t.check(time.time() - start < 30, "within the resolver's bounds")
    t.check("127.77.0.2" in r.stderr or "no answer" in r.stderr, "names the nameserver",
            r.stderr)


def test_unreachable_registry(t):
    """A name that resolves, with nothing listening on the port."""
    import images
    m = t.module
    port = images.free_port()
    r = t.run([t.prog("sealpod"), "image", "pull", "--from",
               "registry:https://%s:%d" % (NAME, port), "--digest", m.digest,
               "--resolv-conf", m.resolv, "--ca-file", m.pki["ca"],
               "%s/library/busybox:dns" % NAME, t.path("rootfs")], timeout=60)
    t.check(r.returncode != 0, "fails", r.stdout)
    t.check("connect to registry %s:%d" % (NAME, port) in r.stderr, "names host and port",
            r.stderr)
    t.check("Connection refused" in r.stderr, "and why", r.stderr)
