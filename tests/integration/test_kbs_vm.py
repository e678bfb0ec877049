"""The key broker from inside a real UVM (QEMU TCG, sim TEE): a container
of a pod whose policy names sealpod-kbs gets the broker's token from the
agent's /aa/token and a secret from /cdh/resource; the token is one the
broker accepts for resource requests (used from the host afterwards).
The guest reaches the broker on the host's 127.0.0.1 as 10.0.2.2 through
QEMU user networking; the UVM's uplink is up because the pod's images come
from a registry (pod networking proper is another piece of work). The UVM
setup is test_image_vm's."""
import json
import os
import subprocess

import harness

NEEDS_ROOT = True
SLOW = 4


def setup_module(m):
    import agentpod
    import guest
    import images
    import test_agent
    import test_agent_vm as vm
    import test_kbs
    if not guest.have_kernel():
        raise harness.Skip("no Debian cloud kernel in /boot")
    s = m.prog("sealpod")
    # The sim PSP's keys first: the broker trusts their root.
    state = m.path("psp-state")
    os.makedirs(state)
    m.run([s, "sim-psp", "--state", state, "--measurement", "00" * 48, "--out",
           m.path("warm.bin")], check=True, timeout=300)
    m.admin_token = "kbs-vm-test-admin-token-0123456789"
    m.admin_file = m.path("admin.token")
    with open(m.admin_file, "w") as f:
        f.write(m.admin_token + "\n")
    m.url, m.port = test_kbs.start_kbs(m, "kbs", ["--allow-sim", "--sim-root",
                                                  os.path.join(state, "ark.pem"),
                                                  "--allow-measurement", "00" * 48])
    m.guest_kbs = "http://10.0.2.2:%d" % m.port
    m.pod = agentpod.Pod(m, gen_args=["--kbs", m.guest_kbs],
                         yaml_text=test_agent.cdh_pod_yaml(), prefix="kbsvm")
    test_kbs.admin(m.port, "POST", "/kbs/v0/resource/r/t/k", test_agent.CDH_SECRET,
                   m.admin_token, 200)
    test_kbs.admin(m.port, "POST", "/kbs/v0/resource-policy", json.dumps(
        {"path": "r/t/k", "rule": {"host_data": [m.pod.host_data]}}).encode(),
        m.admin_token, 200)
    m.reg = images.Registry(m)
    pushed = m.reg.push(images.busybox_layout(), images.TAG, "library/busybox:latest")
    if pushed != m.pod.digest:
        raise harness.Failure("the registry stores %s, the policy pins %s" % (pushed, m.pod.digest))
    m.image = guest.guest_image()
    m.run_dir = m.path("run")
    os.makedirs(m.run_dir)
    m.qemu = m.spawn(vm.qemu_argv(m.image, m.run_dir, None, net=True), stdin=subprocess.DEVNULL,
                     stdout=open(m.path("qemu.log"), "w"), stderr=subprocess.STDOUT)
    vm.wait_file(os.path.join(m.run_dir, "simpsp.sock"), 30, "QEMU's sim PSP socket")
    m.spawn([s, "sim-psp", "--connect", os.path.join(m.run_dir, "simpsp.sock"),
             "--state", state, "--measurement", "00" * 48, "--host-data", m.pod.host_data],
            stdout=subprocess.DEVNULL, stderr=open(m.path("psp.log"), "w"))
    m.c = vm.connect_agent(m, 180)
    m.c.call("SetPolicy", policy=m.pod.policy.decode(), timeout_s=30 * SLOW)
    m.c.call("CreateSandbox", hostname=agentpod.HOSTNAME, sandbox_id="pod2", pod_name="pod2",
             pod_namespace="default",
             storages=[{"driver": "registry", "source": "http://10.0.2.2:%d" % m.reg.port}],
             timeout_s=30 * SLOW)


def exec_out(t, name, args):
    import agentpod
    c = t.module.c
    c.call("ExecProcess", container_id="r", exec_id=name,
           process=t.module.pod.process("reader", args), timeout_s=30 * SLOW)
    out = agentpod.read_all(c, "r", name, timeout_s=60 * SLOW)
    status = agentpod.first(c.call("WaitProcess", container_id="r", exec_id=name,
                                   timeout_s=60 * SLOW), 1, 0)
    return status, out


def test_token_and_resource_from_a_container_in_the_uvm(t):
    import test_agent
    import test_agent_vm as vm
    m = t.module
    c = m.c
    c.call("CreateContainer", container_id="r", container_name="reader", image=m.pod.image,
           oci_spec=m.pod.specs["reader"], timeout_s=120 * SLOW)
    c.call("StartContainer", container_id="r", timeout_s=30 * SLOW)
    status, out = exec_out(t, "token", test_agent.AA_TOKEN)
    t.eq(status, 0, "wget of /aa/token in the UVM: %r\n%s" % (out, vm.console(m)))
    tok = json.loads(out)
    t.eq(sorted(tok), ["tee_keypair", "token"], "/aa/token answer")
    status, out = exec_out(t, "good", test_agent.CDH_GOOD)
    t.eq(status, 0, "wget of /cdh/resource in the UVM")
    t.eq(out, test_agent.CDH_SECRET, "the secret released into the UVM")
    status, out = exec_out(t, "other", test_agent.CDH_OTHER)
    t.check(b"403" in out and b"status=1" in out,
            "r/t/other: no rule on this broker, so denied by default", out)
    # The UVM's token, presented to the broker by another client: accepted,
    # and the key that came with it decrypts the answer.
    with open(t.path("token.json"), "w") as f:
        json.dump(tok, f)
    r = t.run([t.prog("sealpod"), "kbs", "get-resource", "--url", m.url, "--token-json",
               t.path("token.json"), "--out", t.path("res.bin"), "r/t/k"])
    t.eq(r.returncode, 0, "the UVM's token at the broker: " + r.stderr)
    with open(t.path("res.bin"), "rb") as f:
        t.eq(f.read(), test_agent.CDH_SECRET, "the secret through the UVM's token")
    c.call("RemoveContainer", container_id="r", timeout=1, timeout_s=60 * SLOW)
    t.check(m.qemu.poll() is None, "the UVM is still running", vm.console(m))
