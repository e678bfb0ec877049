"""The guest agent as PID 1 of a real UVM (QEMU, TCG here), over the real
ttRPC path on the virtio-serial port: the sim PSP serves the VM's sim port
with HOST_DATA = SHA-256 of the pod's policy, the images come from a
read-only disk (a tar of an OCI store made by `sealpod image pack`), and
the pod's life runs through agentpod.run(): SetPolicy, CreateSandbox with
the oci-store, two containers sharing an emptyDir, an exec allowed and one
denied, stats, update, RemoveContainer, DestroySandbox. One boot for the
module."""
import os
import socket
import subprocess
import time

import harness

NEEDS_ROOT = True
SLOW = 4  # deadlines under TCG on a shared machine

M = None


def qemu_argv(image, run, disk, mem=512, net=False):
    """disk: the image disk (/dev/vda) or None; net: QEMU user networking
    (the guest reaches this host's 127.0.0.1 as 10.0.2.2)."""
    with open(os.path.join(image, "cmdline")) as f:
        cmdline = f.read().strip()
    argv = ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-accel", "tcg", "-machine", "q35", "-cpu", "max", "-m", str(mem), "-smp", "1",
            "-kernel", os.path.join(image, "vmlinuz"),
            "-initrd", os.path.join(image, "initrd.img"), "-append", cmdline,
            "-chardev", "file,id=con0,path=%s/console.log" % run, "-serial", "chardev:con0",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", "socket,id=agent0,path=%s/agent.sock,server=on,wait=off" % run,
            "-device", "virtserialport,bus=vser0.0,chardev=agent0,name=sealpod.agent",
            "-chardev", "socket,id=simpsp0,path=%s/simpsp.sock,server=on,wait=off" % run,
            "-device", "virtserialport,bus=vser0.0,chardev=simpsp0,name=sealpod.simpsp"]
    if disk:
        argv += ["-drive", "file=%s,if=none,id=disk0,format=raw,readonly=on" % disk.replace(",", ",,"),
                 "-device", "virtio-blk-pci,drive=disk0,serial=sealpod-images"]
    if net:
        argv += ["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0"]
    return argv


def console(m):
    try:
        with open(os.path.join(m.run_dir, "console.log"), errors="replace") as f:
            return f.read()[-3000:]
    except FileNotFoundError:
        return ""


def wait_file(path, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise harness.Failure("timed out waiting for " + what)


def connect_agent(m, timeout):
    """A ttRPC client on the agent port, once Health.Check answers."""
    import test_agent
    end = time.time() + timeout
    last = None
    while time.time() < end:
        if m.qemu.poll() is not None:
            raise harness.Failure("QEMU exited (%s): %s" % (m.qemu.returncode, console(m)))
        c = None
        try:
            c = test_agent.Client(os.path.join(m.run_dir, "agent.sock"))
            c.s.settimeout(3)
            c.call("Check", timeout_s=3)
            c.s.settimeout(60 * SLOW)
            return c
        except (OSError, ConnectionError, test_agent.RpcError) as e:
            last = e
            if c:
                c.close()
            time.sleep(0.5)
    raise harness.Failure("the agent never answered Health.Check (%s): %s" % (last, console(m)))


def setup_module(m):
    global M
    M = m
    import agentpod
    import guest
    if not guest.have_kernel():
        raise harness.Skip("no guest kernel: install linux-source-6.12 (scripts/install-deps)")
    m.pod = agentpod.Pod(m)
    m.image = guest.guest_image()
    m.run_dir = m.path("run")
    os.makedirs(m.run_dir)
    m.qemu = m.spawn(qemu_argv(m.image, m.run_dir, m.pod.disk), stdin=subprocess.DEVNULL,
                     stdout=open(m.path("qemu.log"), "w"), stderr=subprocess.STDOUT)
    wait_file(os.path.join(m.run_dir, "simpsp.sock"), 30, "QEMU's sim PSP socket")
    state = m.path("psp-state")
    os.makedirs(state)
    m.spawn([m.prog("sealpod"), "sim-psp", "--connect", os.path.join(m.run_dir, "simpsp.sock"),
             "--state", state, "--measurement", "00" * 48, "--host-data", m.pod.host_data],
            stdout=subprocess.DEVNULL, stderr=open(m.path("psp.log"), "w"))
    m.c = connect_agent(m, 180)


def test_pod_in_the_uvm(t):
    import agentpod
    m = t.module
    # The reader fetches evidence from the agent's endpoint on the pod's
    # loopback (PID 1's default 127.0.0.1:8006), verified on the host.
    agentpod.run(t, m.c, m.pod, "/dev/vda", slow=SLOW,
                 sim_root=os.path.join(m.path("psp-state"), "ark.pem"))
    t.check(m.qemu.poll() is None, "the UVM is still running", console(m))


def test_host_cannot_replace_the_policy(t):
    import agentpod
    m = t.module
    agentpod.expect_denied(t, lambda: m.c.call("SetPolicy", policy=m.pod.policy.decode(),
                                               timeout_s=30), "second SetPolicy")
    # A block device outside /dev is refused as an image store.
    try:
        m.c.call("CreateSandbox", hostname="x", storages=[
            {"driver": "oci-store", "source": "/etc/passwd"}], timeout_s=30)
    except Exception as e:  # the policy or the agent refuses it: both name it
        t.check("oci-store" in str(e) or "denied" in str(e), "refusal names the storage", str(e))
    else:
        raise AssertionError("CreateSandbox with an oci-store outside /dev succeeded")
