"""`sealpod run`: Kubernetes pods end to end in a UVM under TCG, with the
sim TEE. Each test boots its own UVM (that is what `sealpod run` does), so
the module keeps their number small."""
import os
import signal
import socket
import struct
import subprocess
import time

import harness
from images import free_port

NEEDS_ROOT = True
ROOT = harness.ROOT


def setup_module(m):
    if not os.path.exists("/dev/kvm") and not os.path.exists("/usr/bin/qemu-system-x86_64"):
        raise harness.Skip("no QEMU")
    m.images = os.path.join(harness.build_dir(), "examples", "images")
    r = subprocess.run([os.path.join(ROOT, "scripts", "example-images"), m.images],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise harness.Failure("example images: " + r.stdout)
    # Build the guest image once for the module (sealpod run would, too).
    m.guest = os.path.join(harness.build_dir(), "guest")
    r = subprocess.run([harness.prog("sealpod"), "image", "build", "--output", m.guest],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise harness.Failure("image build: " + r.stdout)


def run(t, yaml, *extra, timeout=300):
    argv = [t.prog("sealpod"), "run", "--image-dir", t.module.images, "--guest-dir",
            t.module.guest, "--accel", "tcg"] + list(extra) + [yaml]
    return t.run(argv, timeout=timeout)


def example(name):
    return os.path.join(ROOT, "examples", name)


def gone_or_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def qemu_pids(pod):
    """QEMU processes of this pod's sandboxes (their run directory is
    /run/sealpod/<pod>-<random>/); other modules' VMs run in parallel."""
    out = subprocess.run(["pgrep", "-f", "qemu-system-x86_64.*/run/sealpod/%s-" % pod],
                         stdout=subprocess.PIPE, text=True).stdout
    return set(out.split())


def no_leftovers(t, pod):
    """No QEMU of the pod left, no sandbox state of it left."""
    t.wait_for(lambda: not qemu_pids(pod), 10, "QEMU to exit")
    left = os.listdir("/run/sealpod") if os.path.isdir("/run/sealpod") else []
    t.check(not [d for d in left if d.startswith(pod + "-")], "no sandbox state left", left)


def test_hello_with_attestation(t):
    r = run(t, example("hello.yaml"), "--attest")
    t.eq(r.returncode, 0, "exit code\n" + r.stderr)
    t.check("hello | hello from a confidential pod" in r.stdout, "prefixed output", r.stdout)
    t.check('"measurement_matches": true' in r.stdout, "measurement predicted", r.stdout)
    t.check('"host_data_matches": true' in r.stdout, "HOST_DATA = policy hash", r.stdout)
    t.check("sim" in r.stdout, "root of trust says sim", r.stdout)
    no_leftovers(t, "hello")


def test_emptydir_two_containers(t):
    r = run(t, example("emptydir.yaml"))
    t.eq(r.returncode, 0, "exit code\n" + r.stderr)
    t.check("reader | written-by-writer" in r.stdout, "reader saw the writer's file", r.stdout)


def test_job_with_init_container(t):
    r = run(t, example("job.yaml"))
    t.eq(r.returncode, 0, "exit code\n" + r.stderr)
    out = r.stdout
    t.check("prepare | preparing" in out, "init container ran", out)
    t.check("count | liftoff" in out, "main container ran", out)
    t.check(out.index("prepare | preparing") < out.index("count | 3"), "init ran first", out)


def test_exit_status_is_the_pods(t):
    y = t.path("fail.yaml")
    with open(y, "w") as f:
        f.write("""apiVersion: v1
kind: Pod
metadata: {name: failing}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: localhost/busybox:latest
    command: ["/bin/sh", "-c", "echo about to fail; exit 7"]
""")
    r = run(t, y)
    t.eq(r.returncode, 7, "exit code\n" + r.stderr)
    t.check("c | about to fail" in r.stdout, "output", r.stdout)
    t.check("exited with status 7" in r.stderr, "says which container failed", r.stderr)


def test_policy_not_matching_host_data_is_refused(t):
    """A host that launches the UVM with one HOST_DATA and then sends
    another policy: the agent compares the policy's hash with HOST_DATA in
    its own TEE report and refuses it, and no container runs."""
    r = run(t, example("hello.yaml"), "--unsafe-host-data", "ab" * 32)
    t.eq(r.returncode, 1, "exit code\n" + r.stdout + r.stderr)
    t.check("HOST_DATA" in r.stderr, "the refusal names HOST_DATA", r.stderr)
    t.check("hello from" not in r.stdout, "no container ran", r.stdout)


def test_tampered_command_does_not_run(t):
    """The annotation's policy, not the YAML around it, decides what runs:
    a command edited after generation never reaches the guest."""
    gen = t.run([t.prog("sealpod"), "policy", "gen", example("hello.yaml"), "--image-dir",
                 t.module.images], check=True)
    doc = gen.stdout.replace("echo hello from a confidential pod", "echo tampered")
    t.check(doc != gen.stdout, "the test edited the command")
    y = t.path("tampered.yaml")
    with open(y, "w") as f:
        f.write(doc)
    r = run(t, y)
    t.check("tampered" not in r.stdout, "the tampered command did not run", r.stdout)


def test_missing_image_is_a_clear_error(t):
    y = t.path("missing.yaml")
    with open(y, "w") as f:
        f.write("""apiVersion: v1
kind: Pod
metadata: {name: missing}
spec:
  containers:
  - name: c
    image: localhost/nothere:1.0
""")
    r = run(t, y, timeout=60)
    t.eq(r.returncode, 1, "exit code")
    t.check("nothere" in r.stderr, "error names the image", r.stderr)


LONG_POD = """apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    image: localhost/busybox:latest
    command: ["/bin/sh", "-c", "echo running; sleep 600"]
"""


def start_long_pod(t, name):
    """Starts `sealpod run` of a pod that prints one line and sleeps;
    returns the process once that line arrived."""
    y = t.path(name + ".yaml")
    with open(y, "w") as f:
        f.write(LONG_POD % name)
    argv = [t.prog("sealpod"), "run", "--image-dir", t.module.images, "--guest-dir",
            t.module.guest, "--accel", "tcg", y]
    p = t.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    t.check("c | running" in line, "container started", line)
    return p


def test_ctrl_c_stops_the_pod(t):
    p = start_long_pod(t, "sleeper")
    p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(60)
    except subprocess.TimeoutExpired:
        raise harness.Failure("sealpod run did not stop after SIGINT")
    t.check(rc != 0, "non-zero exit after interrupt", rc)
    no_leftovers(t, "sleeper")


def test_killing_qemu_is_a_clear_error(t):
    p = start_long_pod(t, "victim")
    pids = qemu_pids("victim")
    t.check(pids, "the pod's QEMU is running")
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    try:
        rc = p.wait(60)
    except subprocess.TimeoutExpired:
        raise harness.Failure("sealpod run did not notice QEMU's death")
    err = p.stderr.read()
    t.check(rc != 0, "non-zero exit", rc)
    t.check("UVM" in err or "guest" in err, "says the UVM died", err)
    no_leftovers(t, "victim")


def test_exec_probe_becomes_ready(t):
    """examples/probe.yaml: the readiness probe's command is in the
    generated policy's exec list, runs in the container, and passes."""
    r = run(t, example("probe.yaml"))
    t.eq(r.returncode, 0, "exit code\n" + r.stderr)
    t.check("server | serving" in r.stdout, "the container ran", r.stdout)
    t.check("server | done" in r.stdout, "the container finished", r.stdout)
    t.check("sealpod: container server: ready" in r.stderr, "the probe passed", r.stderr)
    t.check("refused" not in r.stderr and "not ready" not in r.stderr,
            "no probe was refused or failed", r.stderr)
    no_leftovers(t, "probed")


# A long-running pod whose policy lets the host exec exactly two commands.
DETACHED = """apiVersion: v1
kind: Pod
metadata:
  name: %s
  annotations:
    io.sealpod.policy/exec: '{"app": [["cat", "/etc/hostname"], ["cat", "/nonexistent"]]}'
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: localhost/busybox:latest
    command: ["/bin/sh", "-c", "echo %s up; while true; do sleep 1; done"]
"""

PODS = "/run/sealpod/pods"


def sealpod(t, *args, timeout=60):
    return t.run([t.prog("sealpod")] + list(args), timeout=timeout)


def gone(t, pod):
    """Stopped: no QEMU, no sandbox state, no pod state directory."""
    no_leftovers(t, pod)
    t.check(not os.path.exists(os.path.join(PODS, pod)), "no pod state left",
            os.listdir(PODS) if os.path.isdir(PODS) else "")


def test_detached_pods_ps_logs_exec_stop(t):
    """Two detached pods at once: run --detach returns once they run, a
    second run of a running name is refused, ps lists both, logs shows the
    output, exec runs what the policy lists (with its exit status) and the
    agent's refusal of anything else is shown, stop leaves nothing."""
    names = ["it-detach-a", "it-detach-b"]
    yamls = []
    for n in names:
        y = t.path(n + ".yaml")
        with open(y, "w") as f:
            f.write(DETACHED % (n, n))
            if n == names[1]:  # sized by its limit
                f.write("    resources: {limits: {memory: 100Mi}}\n")
        yamls.append(y)
        t.cleanup(lambda n=n: sealpod(t, "stop", n, "--grace", "0", timeout=120))
    a, b = names

    r = run(t, yamls[0], "--detach")
    t.eq(r.returncode, 0, "run --detach exit code\n" + r.stderr)
    t.eq(r.stdout.strip(), a, "run --detach prints the pod's name")
    t.check("running" in r.stderr, "progress came through", r.stderr)
    t.check(qemu_pids(a), "the UVM runs after run --detach returned")

    again = run(t, yamls[0], "--detach", timeout=60)
    t.eq(again.returncode, 1, "second run of a running name\n" + again.stderr)
    t.check("already running" in again.stderr and "sealpod stop %s" % a in again.stderr,
            "the refusal says why and what to do", again.stderr)
    t.eq(len(qemu_pids(a)), 1, "the refused run started no UVM")

    r = run(t, yamls[1], "--detach")
    t.eq(r.returncode, 0, "second pod\n" + r.stderr)
    # The UVM's memory: 256 MiB, plus the containers' memory limits.
    for n, mib in ((a, "256"), (b, "356")):
        with open("/proc/%s/cmdline" % min(qemu_pids(n))) as f:
            argv = f.read().split("\0")
        t.eq(argv[argv.index("-m") + 1], mib, "QEMU -m of %s" % n)

    ps = sealpod(t, "ps")
    t.eq(ps.returncode, 0, "ps exit code")
    for n in names:
        line = [l for l in ps.stdout.splitlines() if l.startswith(n + " ")]
        t.check(line and "running" in line[0] and "app (running" in line[0],
                "ps lists %s as running" % n, ps.stdout)

    def logged():
        return "app | %s up" % a in sealpod(t, "logs", a).stdout
    t.wait_for(logged, 30, "the pod's output in sealpod logs")
    logs = sealpod(t, "logs", a, "app")
    t.check("app | %s up" % a in logs.stdout, "logs NAME CONTAINER", logs.stdout)
    t.check(b not in logs.stdout, "only this pod's output", logs.stdout)
    bad = sealpod(t, "logs", a, "nosuch")
    t.check(bad.returncode == 1 and "no container nosuch" in bad.stderr,
            "logs names a missing container", bad.stderr)

    # exec: the command runs in that pod (its hostname is its name).
    for n in names:
        e = sealpod(t, "exec", n, "-c", "app", "--", "cat", "/etc/hostname")
        t.eq(e.returncode, 0, "exec of a listed command\n" + e.stderr)
        t.eq(e.stdout.strip(), n, "exec ran in pod %s" % n)
    e = sealpod(t, "exec", a, "--", "cat", "/nonexistent")
    t.eq(e.returncode, 1, "exec exits with the command's status\n" + e.stderr)
    t.check("nonexistent" in e.stderr, "the command's stderr came through", e.stderr)
    e = sealpod(t, "exec", a, "--", "ls", "/")
    t.eq(e.returncode, 1, "exec of an unlisted command")
    t.check(e.stderr.startswith("sealpod exec: ExecProcess denied by policy"),
            "the agent's refusal, plainly", e.stderr)
    t.check('["cat","/etc/hostname"]' in e.stderr, "it lists what is allowed", e.stderr)
    t.check(not e.stdout, "nothing ran", e.stdout)

    # The control socket refuses malformed requests with a word, and the
    # supervisor goes on serving (the parser is fuzzed: fuzz/run_ctl.c).
    def ctl(raw):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(os.path.join(PODS, a, "ctl.sock"))
        s.sendall(raw)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        s.close()
        return out
    def frame(t_, b_):
        return t_ + struct.pack(">I", len(b_)) + b_
    r = ctl(frame(b"q", b"[1,2"))
    t.check(r[:1] == b"E" and b"not a JSON object" in r, "non-JSON request", r)
    r = ctl(frame(b"q", b'{"op":"exec","args":[7]}'))
    t.check(r[:1] == b"E" and b"args[0] is not a string" in r, "a number as an argument", r)
    r = ctl(frame(b"q", b'{"op":"stop","grace":-1}'))
    t.check(r[:1] == b"E" and b"grace must be 0-3600" in r, "a negative grace", r)
    r = ctl(b"q\xff\xff\xff\xff")
    t.eq(r, b"", "a frame over 1 MiB closes the connection unanswered")
    t.check(qemu_pids(a), "the pod still runs after bad requests")

    # logs -f follows until the pod is gone.
    follow = t.spawn([t.prog("sealpod"), "logs", "-f", a], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
    s = sealpod(t, "stop", a, timeout=120)
    t.eq(s.returncode, 0, "stop exit code\n" + s.stderr)
    t.eq(s.stdout.strip(), a, "stop prints the name")
    gone(t, a)
    try:
        out, _ = follow.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        raise harness.Failure("logs -f did not end when the pod stopped")
    t.check("app | %s up" % a in out, "logs -f printed the output", out)

    # The other pod is untouched, then stops as cleanly.
    ps = sealpod(t, "ps")
    t.check(a not in ps.stdout and b in ps.stdout, "ps after stopping one", ps.stdout)
    e = sealpod(t, "exec", b, "--", "cat", "/etc/hostname")
    t.eq(e.stdout.strip(), b, "the other pod still answers")
    s = sealpod(t, "stop", b, "--grace", "1", timeout=120)
    t.eq(s.returncode, 0, "stop of the second pod\n" + s.stderr)
    gone(t, b)
    s = sealpod(t, "stop", b)
    t.check(s.returncode == 1 and "no pod named" in s.stderr, "stop of a stopped pod", s.stderr)


def test_detached_pod_whose_supervisor_died(t):
    """A reboot-like loss: the detached pod's supervisor is killed with
    SIGKILL. Its UVM goes with it, and `sealpod ps` says the pod is gone
    and removes the stale entry; stop and logs then name no such pod."""
    n = "it-lost"
    y = t.path(n + ".yaml")
    with open(y, "w") as f:
        f.write(DETACHED % (n, n))
    t.cleanup(lambda: sealpod(t, "stop", n, "--grace", "0", timeout=120))
    r = run(t, y, "--detach")
    t.eq(r.returncode, 0, "run --detach exit code\n" + r.stderr)
    sup = subprocess.run(["pgrep", "-f", "sealpod run .*%s" % y], stdout=subprocess.PIPE,
                         text=True).stdout.split()
    t.eq(len(sup), 1, "one supervisor process for the pod")
    t.check(qemu_pids(n), "its UVM runs")
    os.kill(int(sup[0]), signal.SIGKILL)
    t.wait_for(lambda: not qemu_pids(n), 30, "the UVM to go with its supervisor")
    # SIGKILL is delivered at once but a process exits thread by thread:
    # its lock goes only when the last one has (seen under load).
    t.wait_for(lambda: gone_or_zombie(int(sup[0])), 30, "the supervisor to be gone")
    t.check(os.path.isdir(os.path.join(PODS, n)), "the state directory outlived it (stale)")
    ps = sealpod(t, "ps")
    t.eq(ps.returncode, 0, "ps exit code\n" + ps.stderr)
    t.check("removed pod %s: its supervisor is gone" % n in ps.stderr,
            "ps says what happened to the pod", ps.stderr)
    t.check(n not in ps.stdout, "ps no longer lists it", ps.stdout)
    t.check(not os.path.exists(os.path.join(PODS, n)), "the stale entry is removed")
    s = sealpod(t, "stop", n)
    t.check(s.returncode == 1 and "no pod named" in s.stderr, "stop of the lost pod", s.stderr)
    no_leftovers(t, n)


def test_disk_full_is_a_clear_error(t):
    """The host's disk full while packing the pod's images (TMPDIR) or while
    making the pod's state directory: sealpod run fails naming the file and
    ENOSPC, and leaves nothing on the full disk, no UVM and no sandbox."""
    mnt = t.path("tiny")
    os.makedirs(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt], check=True)
    t.cleanup(lambda: subprocess.run(["umount", "-l", mnt]))
    env = dict(os.environ, TMPDIR=mnt)
    argv = [t.prog("sealpod"), "run", "--image-dir", t.module.images, "--guest-dir",
            t.module.guest, "--accel", "tcg", example("hello.yaml")]
    r = t.run(argv, timeout=300, env=env)
    t.eq(r.returncode, 1, "exit code with a full TMPDIR\n" + r.stderr)
    t.check("No space left on device" in r.stderr and "blob sha256:" in r.stderr,
            "the error names the blob being written and ENOSPC", r.stderr)
    t.eq(os.listdir(mnt), [], "nothing left in the full TMPDIR")
    no_leftovers(t, "hello")

    # Full where the pod's state goes: the pods directory on the tmpfs,
    # filled to the last block.
    fd = os.open(os.path.join(mnt, "fill"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    os.close(fd)
    env = dict(os.environ, SEALPOD_PODS_DIR=os.path.join(mnt, "pods"))
    r = t.run(argv, timeout=300, env=env)
    t.eq(r.returncode, 1, "exit code with a full state directory\n" + r.stderr)
    t.check("No space left on device" in r.stderr and os.path.join(mnt, "pods") in r.stderr,
            "the error names the state directory and ENOSPC", r.stderr)
    left = os.listdir(os.path.join(mnt, "pods")) if os.path.isdir(os.path.join(mnt, "pods")) \
        else []
    t.eq(left, [], "no partial pod state")
    t.eq(sorted(os.listdir(mnt)), ["fill"] + (["pods"] if os.path.isdir(
        os.path.join(mnt, "pods")) else []), "nothing else on the full disk")
    no_leftovers(t, "hello")


SEALED_POD = """apiVersion: v1
kind: Pod
metadata:
  name: sealedpod
  annotations:
    io.sealpod.policy/logs: "*"
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: localhost/busybox:latest
    command: ["/bin/sh", "-c", "echo env=$(echo $SECRET | cut -c1-7) len=${#SECRET}; printf %%s \\"$SECRET\\" | sha256sum; echo token=$(wget -q -O - 'http://127.0.0.1:8006/aa/token?token_type=kbs' | cut -c1-14); echo cdh=$(wget -q -O - http://127.0.0.1:8006/cdh/resource/r/t/k | sha256sum); %s"]
    env:
    - name: SECRET
      value: "%s"
"""


def test_sealed_env_in_uvm(t):
    """`sealpod run` of a pod whose env var is a sealed secret, in a UVM
    under TCG with the sim TEE: the agent unseals it from sealpod-kbs on
    the host, reached at 10.0.2.2 over the pod's own network (QEMU user
    networking; no registry: the images come on a disk), so the container
    sees the secret — it prints its SHA-256, length and first characters,
    not the secret — while `sealpod ps`, `sealpod logs` and the pod's
    files on the host hold only the sealed form. With the broker's rule
    naming another HOST_DATA the pod does not start, and the error names
    the variable and the resource."""
    import hashlib
    import json
    import test_kbs
    s = t.prog("sealpod")
    secret = b"uvm-sealed-secret-7f3a"
    state = "/var/lib/sealpod/sim-psp"  # sealpod run's sim PSP (SEALPOD_SIM_STATE unset)
    t.run([s, "sim-psp", "--measurement", "00" * 48, "--out", t.path("warm.bin")],
          check=True, timeout=300)
    t.admin_token = "run-sealed-admin-token-0123456789"
    t.admin_file = t.path("admin.token")
    with open(t.admin_file, "w") as f:
        f.write(t.admin_token + "\n")
    url, port = test_kbs.start_kbs(t, "kbs", ["--allow-sim", "--sim-root",
                                              os.path.join(state, "ark.pem")])
    sealed = t.run([s, "kbs", "seal", "kbs:///r/t/k"], check=True).stdout.strip()

    def gen(name, tail):
        src, out = t.path(name + ".yaml"), t.path(name + "-gen.yaml")
        with open(src, "w") as f:
            f.write(SEALED_POD % (tail, sealed))
        r = t.run([s, "policy", "gen", src, "--image-dir", t.module.images, "--kbs",
                   "http://10.0.2.2:%d" % port, "--print-hash", "--output", out])
        t.eq(r.returncode, 0, "policy gen: " + r.stderr)
        return out, r.stdout.split()[-1]
    test_kbs.admin(port, "POST", "/kbs/v0/resource/r/t/k", secret, t.admin_token, 200)

    def rule(hd):
        test_kbs.admin(port, "POST", "/kbs/v0/resource-policy", json.dumps(
            {"path": "r/t/k", "rule": {"host_data": [hd]}}).encode(), t.admin_token, 200)

    # Detached, so that ps, logs and the state files can be looked at.
    yaml, host_data = gen("sealed-detached", "sleep 600")
    rule(host_data)
    t.cleanup(lambda: sealpod(t, "stop", "sealedpod", "--grace", "0", timeout=120))
    r = run(t, yaml, "--detach", timeout=600)
    t.eq(r.returncode, 0, "run --detach\n" + r.stdout + r.stderr)
    want = "env=%s len=%d" % (secret[:7].decode(), len(secret))
    t.wait_for(lambda: want in sealpod(t, "logs", "sealedpod").stdout, 120,
               "the container's output")
    t.wait_for(lambda: "cdh=" in sealpod(t, "logs", "sealedpod").stdout, 60,
               "the container's endpoint lines")
    logs = sealpod(t, "logs", "sealedpod").stdout
    t.check(hashlib.sha256(secret).hexdigest() in logs, "the container saw the secret", logs)
    # The workload endpoint reaches the broker over the pod's network too
    # (the agent dials from the pod's namespace, which holds the device).
    t.check("cdh=" + hashlib.sha256(secret).hexdigest() in logs,
            "/cdh/resource from inside the container", logs)
    t.check('token={"tee_keypair' in logs, "/aa/token from inside the container", logs)
    ps = sealpod(t, "ps")
    t.check("sealedpod" in ps.stdout, "sealpod ps lists the pod", ps.stdout)
    held = []
    for root in (os.path.join(PODS, "sealedpod"), "/run/sealpod"):
        for d, _, files in os.walk(root):
            for fn in files:
                path = os.path.join(d, fn)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue  # sockets, FIFOs (an open would block)
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                if secret in data:
                    held.append(path)
    t.eq(held, [], "no file of the host holds the secret")
    t.check(secret.decode() not in ps.stdout + logs + r.stdout + r.stderr,
            "ps and logs show no secret", ps.stdout)
    r = sealpod(t, "stop", "sealedpod", "--grace", "0", timeout=120)
    t.eq(r.returncode, 0, "stop: " + r.stderr)
    no_leftovers(t, "sealedpod")
    # The broker releases r/t/k only to another pod policy: the pod does
    # not start, and the error names the variable and the resource.
    yaml, _ = gen("sealed-once", "true")
    rule(hashlib.sha256(b"another pod's policy").hexdigest())
    r = run(t, yaml, timeout=600)
    t.check(r.returncode != 0, "the pod does not start", r.stdout)
    t.check("r/t/k" in r.stderr and "SECRET" in r.stderr and "403" in r.stderr,
            "the error names the variable, the resource and the broker's answer", r.stderr)
    t.check("app | env=" not in r.stdout, "the container never ran", r.stdout)
    no_leftovers(t, "sealedpod")


# A web server with a published port and an HTTP readiness probe
# (docs/network.md): QEMU user networking, hostPort as a hostfwd on the
# host, the probe from the host as kubelet runs it.
WEB = """apiVersion: v1
kind: Pod
metadata:
  name: %(name)s
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: localhost/busybox:latest
    command: ["/bin/sh", "-c", "mkdir -p /tmp/www && echo hello from %(name)s > /tmp/www/index.html && echo $(hostname) > /tmp/www/host.txt && exec /bin/busybox httpd -f -p 8080 -h /tmp/www"]
    ports:
    - containerPort: 8080
      hostPort: %(port)d
    readinessProbe:
      httpGet: {path: /index.html, port: 8080}
      periodSeconds: 1
      timeoutSeconds: 5
    livenessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 2
      timeoutSeconds: 5
"""


def http_get(port, path="/", timeout=10):
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.status, r.read().decode()


def status_of(pod):
    import json
    try:
        with open(os.path.join(PODS, pod, "status.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def test_published_port_and_http_probe(t):
    """`sealpod run --detach` of a busybox httpd with containerPort 8080 /
    hostPort P and an extra `--publish Q:8080`: its HTTP readiness probe
    passes, curl 127.0.0.1:P and :Q answer with the pod's page while it
    runs, `sealpod ps` shows the ports, and after stop nothing listens."""
    name = "it-web"
    port, port2 = free_port(), free_port()
    y = t.path("web.yaml")
    with open(y, "w") as f:
        f.write(WEB % {"name": name, "port": port})
    t.cleanup(lambda: sealpod(t, "stop", name, "--grace", "0", timeout=120))
    r = run(t, y, "--detach", "--publish", "127.0.0.1:%d:8080" % port2)
    t.eq(r.returncode, 0, "run --detach\n" + r.stderr)

    def ready():
        cs = status_of(name).get("containers", [])
        return cs and cs[0].get("ready") is True
    t.wait_for(ready, 180, "the HTTP readiness probe to pass")
    code, body = http_get(port, "/index.html")
    t.eq((code, body.strip()), (200, "hello from %s" % name), "curl 127.0.0.1:hostPort")
    code, body = http_get(port2, "/index.html")
    t.eq(code, 200, "the --publish port answers too")
    code, body = http_get(port, "/host.txt")
    t.eq(body.strip(), name, "the pod's hostname")
    curl = subprocess.run(["curl", "-sS", "--max-time", "20", "http://127.0.0.1:%d/" % port],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t.check(curl.returncode == 0 and "hello from %s" % name in curl.stdout,
            "curl 127.0.0.1:hostPort/ answers with the pod's index.html", curl.stdout)
    ps = sealpod(t, "ps")
    line = [l for l in ps.stdout.splitlines() if l.startswith(name + " ")]
    t.check(line and ("0.0.0.0:%d->8080/tcp" % port) in line[0] and
            ("127.0.0.1:%d->8080/tcp" % port2) in line[0] and "ready" in line[0],
            "ps shows the published ports and readiness", ps.stdout)
    log = open(os.path.join(PODS, name, "supervisor.log")).read()
    t.check("liveness probe failed" not in log and "not ready" not in log,
            "no probe failed", log)
    s = sealpod(t, "stop", name, "--grace", "1", timeout=120)
    t.eq(s.returncode, 0, "stop\n" + s.stderr)
    gone(t, name)
    import socket
    for p in (port, port2):
        c = socket.socket()
        c.settimeout(2)
        t.check(c.connect_ex(("127.0.0.1", p)) != 0, "nothing listens on %d after stop" % p)
        c.close()


def test_publish_needs_network(t):
    """--network none with a published port is a usage error before any
    UVM starts; a bad --publish names what is wrong."""
    y = t.path("web.yaml")
    with open(y, "w") as f:
        f.write(WEB % {"name": "it-nonet", "port": free_port()})
    r = run(t, y, "--network", "none", timeout=60)
    t.eq(r.returncode, 1, "refused\n" + r.stderr)
    t.check("--network none" in r.stderr, "says why", r.stderr)
    r = run(t, y, "--publish", "80:99999", timeout=60)
    t.check(r.returncode != 0 and "--publish `80:99999`" in r.stderr, "bad --publish", r.stderr)
    t.check(not qemu_pids("it-nonet"), "no UVM was started")


def test_default_guest_image_is_built_once(t):
    """Without --guest-dir, `sealpod run` uses the default guest image and
    rebuilds it only when the agent next to it differs from the one the
    image was built from (the image holds the agent stripped; the manifest
    records the hash of the unstripped file). --tee snp stops the run right
    after the image step on any host (SNP needs KVM, --accel tcg)."""
    d = t.path("guest")
    agent = t.prog("sealpod-agent")
    env = dict(os.environ, SEALPOD_GUEST_DIR=d)
    argv = [t.prog("sealpod"), "run", "--image-dir", t.module.images, "--tee", "snp",
            "--accel", "tcg", example("hello.yaml")]
    other = t.path("agent")
    with open(agent, "rb") as f, open(other, "wb") as g:
        g.write(f.read() + b"\0")
    os.chmod(other, 0o755)
    t.run([t.prog("sealpod"), "image", "build", "--output", d, "--agent", other],
          check=True, timeout=120)
    r = t.run(argv, env=env, timeout=120)
    t.check("building the guest image" in r.stderr, "another agent: rebuilt", r.stderr)
    t.check("SEV-SNP needs KVM" in r.stderr, "then stopped at the UVM", r.stderr)
    r = t.run(argv, env=env, timeout=120)
    t.check("building the guest image" not in r.stderr, "same agent: not rebuilt", r.stderr)
    t.check("SEV-SNP needs KVM" in r.stderr, "stopped at the UVM again", r.stderr)
