"""sealpod policy through the CLI: generation from Kubernetes YAML with a
local OCI layout and a real registry, explain, hash, spec and eval."""
import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "policy"))
import mklayout  # noqa: E402
import images  # noqa: E402

SANITIZE = True

POD = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    metadata:
      annotations:
        io.sealpod.policy/logs: "app"
    spec:
      containers:
      - name: app
        image: %(image)s
        command: ["sh", "-c", "echo $(GREETING); sleep 1000"]
        env:
        - {name: GREETING, value: hi}
        - name: TOKEN
          valueFrom: {secretKeyRef: {name: s, key: t}}
        readinessProbe:
          exec: {command: ["cat", "/tmp/ready"]}
"""


def layout(t):
    d = t.path("layout")
    digs = mklayout.make(d, [("busybox:1.36", {"Cmd": ["sh"], "Env": ["PATH=/bin"], "WorkingDir": "/w"})])
    return d, digs["busybox:1.36"]


def annotation(yaml_text):
    for line in yaml_text.splitlines():
        if line.strip().startswith("io.sealpod.policy:"):
            return line.split(":", 1)[1].strip()
    return None


def test_gen_from_layout_and_eval(t):
    d, dig = layout(t)
    pod = t.path("pod.yaml")
    with open(pod, "w") as f:
        f.write(POD % {"image": "busybox:1.36"})
    sp = t.prog("sealpod")
    r = t.run([sp, "policy", "gen", pod, "--image-dir", d, "--print-hash", "-o", t.path("out.yaml")], check=True)
    out = open(t.path("out.yaml")).read()
    b64 = annotation(out)
    t.check(b64, "annotation written", out)
    pol = base64.b64decode(b64)
    h = hashlib.sha256(pol).hexdigest()
    t.eq(r.stdout.strip(), "Deployment/web " + h, "--print-hash line")
    t.check("secretKeyRef" in out and "# " not in out, "the rest of the document is kept", out)
    p = json.loads(pol)
    c = p["containers"][0]
    t.eq(c["image"], "busybox@" + dig, "tag resolved to the layout's digest")
    t.eq(c["args"], ["sh", "-c", "echo hi; sleep 1000"], "command with $(VAR) expanded")
    t.eq(c["cwd"], "/w", "image WorkingDir")
    t.eq(c["exec"], [["cat", "/tmp/ready"]], "probe in the exec list")
    r = t.run([sp, "policy", "hash", t.path("out.yaml")], check=True)
    t.eq(r.stdout.strip(), h, "hash of the annotation")
    r = t.run([sp, "policy", "explain", t.path("out.yaml")], check=True)
    t.check("container app" in r.stdout and "cat /tmp/ready" in r.stdout, "explain", r.stdout)

    with open(t.path("pol.json"), "wb") as f:
        f.write(pol)
    with open(t.path("values.json"), "w") as f:
        json.dump({"HOSTNAME": "web-1", "TOKEN": "sekret"}, f)
    r = t.run([sp, "policy", "spec", t.path("pol.json"), "app", "--values", t.path("values.json")], check=True)
    spec = json.loads(r.stdout)
    reqs = [{"kind": "CreateContainerRequest", "request": {"containerId": "c1", "containerName": "app",
                                                           "image": "busybox:1.36@" + dig, "ociSpec": json.dumps(spec)}},
            {"kind": "ExecProcessRequest", "request": {"container_id": "c1", "exec_id": "p1",
                                                      "process": dict(spec["process"], args=["cat", "/tmp/ready"])}},
            {"kind": "ReadStdout", "request": {"container_id": "c1"}}]
    with open(t.path("reqs.json"), "w") as f:
        json.dump(reqs, f)
    r = t.run([sp, "policy", "eval", t.path("pol.json"), t.path("reqs.json")])
    t.eq(r.returncode, 0, "the spec the policy builds is allowed\n" + r.stdout + r.stderr)

    spec["process"]["env"].append("LD_PRELOAD=/x.so")
    reqs[0]["request"]["ociSpec"] = spec
    spec2 = json.loads(json.dumps(spec))
    spec2["process"]["env"] = [e for e in spec2["process"]["env"] if not e.startswith("LD_PRELOAD")]
    spec2["process"]["env"].append("TOKEN=again")
    with open(t.path("bad.json"), "w") as f:
        json.dump([reqs[0], {"kind": "CreateContainerRequest", "request": dict(reqs[0]["request"], ociSpec=spec2)}], f)
    r = t.run([sp, "policy", "eval", t.path("pol.json"), t.path("bad.json"), "--json"])
    t.eq(r.returncode, 1, "a denial exits 1")
    res = json.loads(r.stdout)
    t.eq(res[0]["denial"]["path"], "oci_spec.process.env[%d]" % (len(spec["process"]["env"]) - 1), "denial path")
    t.check("LD_PRELOAD" in res[0]["denial"]["got"], "denial names what arrived", res)
    t.check("sekret" not in r.stdout and "again" not in r.stdout, "Secret values are not echoed", r.stdout)


def test_gen_errors_name_the_problem(t):
    d, _ = layout(t)
    sp = t.prog("sealpod")
    pod = t.path("pod.yaml")
    with open(pod, "w") as f:
        f.write(POD % {"image": "nosuch:1"})
    r = t.run([sp, "policy", "gen", pod, "--image-dir", d])
    t.eq(r.returncode, 1, "exit code")
    t.check("nosuch:1" in r.stderr and "container app" in r.stderr, "error names image and container", r.stderr)
    with open(pod, "w") as f:
        f.write("kind: Pod\nspec: [unclosed\n")
    r = t.run([sp, "policy", "gen", pod, "--image-dir", d])
    t.eq(r.returncode, 1, "exit code for bad YAML")
    t.check("YAML" in r.stderr and "line" in r.stderr, "YAML error with position", r.stderr)
    r = t.run([sp, "policy", "gen", pod, "--registry", "http://example.com:5000"])
    t.eq(r.returncode, 1, "exit code")
    # An empty file (found by the fuzz campaign: libyaml aborted the CLI).
    with open(pod, "w") as f:
        f.write("")
    r = t.run([sp, "policy", "gen", pod, "--image-dir", d])
    t.eq(r.returncode, 1, "exit code for an empty file\n" + r.stderr)
    t.check("no document" in r.stderr, "the error says the file holds nothing", r.stderr)
    # --kbs: an https broker needs its CA; a CA alone, or for http, is refused.
    with open(pod, "w") as f:
        f.write(POD % {"image": "nosuch:1"})
    for args, want in ((["--kbs", "https://10.0.2.2:8443"], "--kbs-ca"),
                       (["--kbs-ca", pod], "--kbs"),
                       (["--kbs", "10.0.2.2:8080"], "10.0.2.2:8080"),
                       (["--kbs", "http://10.0.2.2:8080/kbs/v0"], "nothing after it"),
                       (["--kbs", "http://10.0.2.2:8080", "--kbs-ca", pod], "only for an https")):
        r = t.run([sp, "policy", "gen", pod, "--image-dir", d] + args)
        t.eq(r.returncode, 1, "exit code for %s" % args)
        t.check(want in r.stderr, "error for %s names the problem" % args, r.stderr)
    r = t.run([sp, "policy", "eval", t.path("nope.json"), t.path("nope.json")])
    t.eq(r.returncode, 1, "missing file")
    t.check("nope.json" in r.stderr, "error names the file", r.stderr)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def test_gen_from_registry(t):
    reg = shutil.which("docker-registry")
    if not reg or not shutil.which("skopeo"):
        t.skip("docker-registry or skopeo missing")
    d, dig = layout(t)
    port = free_port()
    cfg = t.path("registry.yml")
    with open(cfg, "w") as f:
        f.write("version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\n"
                "http: {addr: 127.0.0.1:%d}\n" % (t.path("store"), port))
    t.spawn([reg, "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False
    t.wait_for(up, 20, "the registry")
    t.run(["skopeo", "copy", "--dest-tls-verify=false", "oci:%s:busybox:1.36" % d,
           "docker://127.0.0.1:%d/tools/busybox:1.36" % port], check=True)
    pod = t.path("pod.yaml")
    with open(pod, "w") as f:
        f.write(POD % {"image": "127.0.0.1:%d/tools/busybox:1.36" % port})
    r = t.run([t.prog("sealpod"), "policy", "gen", pod], check=True)
    p = json.loads(base64.b64decode(annotation(r.stdout)))
    img = p["containers"][0]["image"]
    t.check(img.startswith("127.0.0.1:%d/tools/busybox@sha256:" % port), "registry digest", img)
    t.eq(p["containers"][0]["cwd"], "/w", "config read from the registry")


def test_gen_from_registry_with_credentials(t):
    """The generator reads images through the image module, so a registry
    that wants basic auth works with --username/--password-file."""
    if not shutil.which("docker-registry") or not shutil.which("skopeo"):
        t.skip("docker-registry or skopeo missing")
    d, _ = layout(t)
    reg = images.Registry(t, htpasswd={"alice": "s3cret"})
    dig = reg.push(d, "busybox:1.36", "team/busybox:1.36")
    pod = t.path("pod.yaml")
    with open(pod, "w") as f:
        f.write(POD % {"image": "%s/team/busybox:1.36" % reg.host})
    pw = t.path("pw")
    with open(pw, "w") as f:
        f.write("s3cret\n")
    sp = t.prog("sealpod")
    r = t.run([sp, "policy", "gen", pod, "--registry", reg.url, "--username", "alice",
               "--password-file", pw], check=True)
    p = json.loads(base64.b64decode(annotation(r.stdout)))
    t.eq(p["containers"][0]["image"], "%s/team/busybox@%s" % (reg.host, dig), "pinned to the pushed digest")
    t.eq(p["containers"][0]["cwd"], "/w", "config read through basic auth")
    r = t.run([sp, "policy", "gen", pod, "--registry", reg.url])
    t.eq(r.returncode, 1, "without credentials")
    t.check("credentials" in r.stderr and "container app" in r.stderr, "the error says what is missing", r.stderr)
