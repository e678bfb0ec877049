"""A registry named by DNS, pulled INSIDE the UVM (issue 15): the test runs
its own nameserver (Debian's dnsmasq on this host's 127.0.0.1:53, which
QEMU user networking gives the guest as 10.0.2.2:53) and a TLS
docker-registry whose certificate, for registry.sealpod.test, comes from a
test CA. The guest image is built for this test with that CA appended to
Debian's bundle (`sealpod image build --ca-bundle`), and the policy trusts
the registry with `ca: "system"`. The pod's resolv.conf (CreateSandbox's
dns lines) names 10.0.2.2; the agent's stub resolver asks it.

One UVM over ttRPC, set up as test_image_vm's."""
import os
import shutil
import subprocess
import time

import harness

NEEDS_ROOT = True
SLOW = 4
NAME = "registry.sealpod.test"


def setup_module(m):
    import agentpod
    import guest
    import images
    import test_agent_vm as vm
    if not guest.have_kernel():
        raise harness.Skip("no Debian cloud kernel in /boot")
    if not shutil.which("dnsmasq"):
        raise harness.Skip("dnsmasq is not installed (apt-get install dnsmasq-base)")
    r = subprocess.run(["ss", "-lun"], stdout=subprocess.PIPE, text=True)
    if "127.0.0.1:53 " in r.stdout or "0.0.0.0:53 " in r.stdout:
        raise harness.Skip("something already serves DNS on 127.0.0.1:53")
    pki = images.make_pki(m.path("pki"), ips=("127.0.0.1",), dns=(NAME,))
    m.reg = images.Registry(m, tls=pki)
    pushed = m.reg.push(images.busybox_layout(), images.TAG, "library/busybox:latest")
    m.dns_log = m.path("dnsmasq.log")
    m.dns = m.spawn(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                     "--no-hosts", "--listen-address=127.0.0.1", "--bind-interfaces",
                     "--port=53", "--pid-file=", "--user=root", "--log-queries",
                     "--log-facility=" + m.dns_log,
                     "--host-record=%s,10.0.2.2" % NAME, "--address=/sealpod.test/"],
                    stdout=subprocess.DEVNULL, stderr=open(m.path("dnsmasq.err"), "w"))
    deadline = time.time() + 10
    while "127.0.0.1:53 " not in subprocess.run(["ss", "-lun"], stdout=subprocess.PIPE,
                                                 text=True).stdout:
        if time.time() > deadline or m.dns.poll() is not None:
            raise harness.Failure("dnsmasq did not start: " + open(m.path("dnsmasq.err")).read())
        time.sleep(0.1)
    # The guest image with the test CA in its (measured) system bundle.
    bundle = m.path("ca-bundle.crt")
    with open(bundle, "w") as out:
        if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
            out.write(open("/etc/ssl/certs/ca-certificates.crt").read())
        out.write(open(pki["ca"]).read())
    m.image = m.path("guest")
    r = m.run([m.prog("sealpod"), "image", "build", "--output", m.image, "--agent",
               harness.prog("sealpod-agent"), "--ca-bundle", bundle], timeout=600,
              env=dict(os.environ, SOURCE_DATE_EPOCH="0"))
    if r.returncode != 0:
        raise harness.Failure("sealpod image build --ca-bundle: " + r.stderr)
    m.manifest = open(os.path.join(m.image, "manifest.json")).read()
    m.host = "%s:%d" % (NAME, m.reg.port)
    m.pod = agentpod.Pod(m, edit=lambda pol: pol.setdefault("registries", []).append(
        {"host": m.host, "ca": "system"}))
    if pushed != m.pod.digest:
        raise harness.Failure("the registry stores %s, the policy pins %s" % (pushed, m.pod.digest))
    m.run_dir = m.path("run")
    os.makedirs(m.run_dir)
    m.qemu = m.spawn(vm.qemu_argv(m.image, m.run_dir, None, net=True), stdin=subprocess.DEVNULL,
                     stdout=open(m.path("qemu.log"), "w"), stderr=subprocess.STDOUT)
    vm.wait_file(os.path.join(m.run_dir, "simpsp.sock"), 30, "QEMU's sim PSP socket")
    state = m.path("psp-state")
    os.makedirs(state)
    m.spawn([m.prog("sealpod"), "sim-psp", "--connect", os.path.join(m.run_dir, "simpsp.sock"),
             "--state", state, "--measurement", "00" * 48, "--host-data", m.pod.host_data],
            stdout=subprocess.DEVNULL, stderr=open(m.path("psp.log"), "w"))
    m.c = vm.connect_agent(m, 180)
    m.c.call("SetPolicy", policy=m.pod.policy.decode(), timeout_s=30 * SLOW)
    m.c.call("CreateSandbox", hostname=agentpod.HOSTNAME, sandbox_id="pod2", pod_name="pod2",
             pod_namespace="default", dns=["nameserver 10.0.2.2", "options timeout:2"],
             storages=[{"driver": "registry", "source": "https://" + m.host}],
             timeout_s=30 * SLOW)


def test_ca_bundle_in_the_guest_manifest(t):
    import json
    man = json.loads(t.module.manifest)
    text = json.dumps(man)
    t.check("/etc/ssl/certs/ca-certificates.crt" in text, "the bundle is in the manifest")
    t.check("ca-certificates" in text, "attributed to Debian's ca-certificates")


def test_pull_by_dns_name_into_the_uvm(t):
    import agentpod
    import test_agent_vm as vm
    m = t.module
    c = m.c
    try:
        c.call("CreateContainer", container_id="w", container_name="writer", image=m.pod.image,
               oci_spec=m.pod.specs["writer"], timeout_s=120 * SLOW)
    except Exception as e:
        raise harness.Failure("CreateContainer: %s\nconsole:\n%s\ndnsmasq:\n%s" % (
            e, vm.console(m), open(m.dns_log, errors="replace").read()[-1500:]))
    c.call("StartContainer", container_id="w", timeout_s=30 * SLOW)
    t.eq(agentpod.first(c.call("ReadStdout", container_id="w", len=100, timeout_s=60 * SLOW), 1),
         b"written\n", "output of the container pulled by name")
    c.call("RemoveContainer", container_id="w", timeout=1, timeout_s=60 * SLOW)
    with open(m.dns_log, errors="replace") as f:
        log = f.read()
    t.check("query[A] %s" % NAME in log, "the guest asked the test's nameserver", log[-800:])
