"""Images by reference (issue 15): `sealpod run` of a pod whose image names
its registry (Debian's docker-registry on 127.0.0.1) runs with no image
flags: the policy is generated from the reference's own registry and the
guest pulls from it (http://10.0.2.2:PORT in the UVM) by the pinned digest.
One UVM under TCG; the refusals boot nothing."""
import os

import harness

NEEDS_ROOT = True
SLOW = 4

POD = """apiVersion: v1
kind: Pod
metadata:
  name: refpod
spec:
  restartPolicy: Never
  containers:
  - name: hello
    image: %s
    command: ["/bin/sh", "-c", "echo pulled by reference"]
"""


def setup_module(m):
    import guest
    if not guest.have_kernel():
        raise harness.Skip("no Debian cloud kernel in /boot")
    m.guest = guest.guest_image()


def _env():
    env = dict(os.environ)
    env.pop("SEALPOD_IMAGE_DIR", None)
    return env


def _yaml(t, image):
    path = t.path("pod.yaml")
    with open(path, "w") as f:
        f.write(POD % image)
    return path


def test_run_local_registry_by_reference(t):
    import images
    reg = images.Registry(t)
    reg.push(images.busybox_layout(), images.TAG, "busybox:sp")
    yaml = _yaml(t, "%s/busybox:sp" % reg.host)
    r = t.run([t.prog("sealpod"), "run", "--guest-dir", t.module.guest, "--accel", "tcg", yaml],
              timeout=300 * SLOW // 2, env=_env())
    t.eq(r.returncode, 0, "exit code\n" + r.stderr)
    t.check("pulled by reference" in r.stdout, "the container's output", r.stdout + r.stderr)


def test_remote_registry_by_name_refused_clearly(t):
    """An image on a registry reached by name: the host-side generator
    cannot resolve it here (no such name), and says which image."""
    yaml = _yaml(t, "registry.invalid/app:1")
    r = t.run([t.prog("sealpod"), "run", "--guest-dir", t.module.guest, "--accel", "tcg", yaml],
              timeout=120, env=_env())
    t.check(r.returncode != 0, "refused", r.stdout)
    t.check("registry.invalid/app:1" in r.stderr, "the error names the image", r.stderr)


def test_two_registries_refused(t):
    """A pod whose images come from two registries, with its policy given:
    the guest pulls from one registry per pod, so sealpod run says so
    before anything boots."""
    import images
    a = images.Registry(t)
    b = images.Registry(t)
    layout = images.busybox_layout()
    da = a.push(layout, images.TAG, "busybox:sp")
    db = b.push(layout, images.TAG, "busybox:sp")
    src = t.path("two.yaml")
    with open(src, "w") as f:
        f.write((POD % ("%s/busybox:sp" % a.host)) +
                "  - name: other\n    image: %s/busybox:sp\n    command: [\"true\"]\n" % b.host)
    r = t.run([t.prog("sealpod"), "policy", "gen", src, "--output", src + ".gen"], timeout=60)
    t.eq(r.returncode, 0, "policy gen: " + r.stderr)
    t.check(da == db, "one manifest", (da, db))
    r = t.run([t.prog("sealpod"), "run", "--guest-dir", t.module.guest, "--accel", "tcg",
               src + ".gen"], timeout=120, env=_env())
    t.check(r.returncode != 0, "refused", r.stdout)
    t.check("one registry" in r.stderr and a.host.split(":")[1] in r.stderr,
            "the error names the registries", r.stderr)


def test_run_with_authfile(t):
    """A registry with basic auth: `sealpod run --authfile` (a
    containers-auth.json) generates the policy with those credentials and
    the guest pulls with them; without credentials the 401 is reported
    naming the image, and nothing boots."""
    import base64
    import json
    import images
    reg = images.Registry(t, htpasswd={"puller": "s3cret"})
    reg.push(images.busybox_layout(), images.TAG, "private/busybox:sp")
    yaml = _yaml(t, "%s/private/busybox:sp" % reg.host)
    auth = t.path("auth.json")
    with open(auth, "w") as f:
        json.dump({"auths": {
            reg.host: {"auth": base64.b64encode(b"puller:s3cret").decode()},
            # Another registry's entry: never sent to this one.
            "registry.example.com": {"auth": base64.b64encode(b"other:wrong").decode()}}}, f)
    env = _env()
    env["HOME"] = t.path("home")  # no podman/docker files of the machine
    env.pop("REGISTRY_AUTH_FILE", None)
    env.pop("XDG_RUNTIME_DIR", None)
    env.pop("DOCKER_CONFIG", None)
    r = t.run([t.prog("sealpod"), "run", "--guest-dir", t.module.guest, "--accel", "tcg",
               yaml], timeout=120, env=env)
    t.check(r.returncode != 0, "no credentials: refused", r.stdout)
    t.check("private/busybox:sp" in r.stderr and "credentials" in r.stderr,
            "the 401 is reported naming the image", r.stderr)
    r = t.run([t.prog("sealpod"), "run", "--authfile", auth, "--guest-dir", t.module.guest,
               "--accel", "tcg", yaml], timeout=300 * SLOW // 2, env=env)
    t.eq(r.returncode, 0, "exit code with --authfile\n" + r.stderr)
    t.check("pulled by reference" in r.stdout, "the container's output", r.stdout + r.stderr)
    # `sealpod policy gen` reads the same files: --authfile, or where
    # podman looks ($REGISTRY_AUTH_FILE); without either it gets the 401.
    gen = [t.prog("sealpod"), "policy", "gen", yaml, "--output", yaml + ".gen"]
    r = t.run(gen, timeout=60, env=env)
    t.check(r.returncode != 0 and "credentials" in r.stderr, "policy gen without credentials",
            r.stderr)
    r = t.run(gen + ["--authfile", auth], timeout=60, env=env)
    t.eq(r.returncode, 0, "policy gen --authfile: " + r.stderr)
    r = t.run(gen, timeout=60, env=dict(env, REGISTRY_AUTH_FILE=auth))
    t.eq(r.returncode, 0, "policy gen with $REGISTRY_AUTH_FILE: " + r.stderr)


def test_manifest_for_another_platform(t):
    """An index with only a linux/arm64 manifest, and a manifest whose
    config says arm64: each refused naming the image and the step, with
    nothing unpacked."""
    import hashlib
    import json
    import images
    lay = t.path("arm")
    md = images.make_layout(lay, [images.tar_bytes([("hello", "file", b"hi\n")])])
    man = images.read_blob(lay, md)
    index = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "digest": md, "size": len(man),
                                       "platform": {"os": "linux",
                                                    "architecture": "arm64"}}]}).encode()
    idig = images.write_blob(lay, index)
    t.eq(idig, "sha256:" + hashlib.sha256(index).hexdigest(), "index digest")
    r = t.run([t.prog("sealpod"), "image", "pull", "--from", "dir:" + lay, "--digest", idig,
               "example.com/arm/app@" + idig, t.path("rootfs")])
    t.check(r.returncode != 0, "an arm64-only index is refused", r.stdout)
    t.check("linux/amd64" in r.stderr and "example.com/arm/app" in r.stderr,
            "the error names the image and the platform", r.stderr)
    t.check(not os.path.exists(t.path("rootfs")), "nothing unpacked")
    # A manifest whose config is for arm64.
    cfg_digest = json.loads(man)["config"]["digest"]
    cfg = json.loads(images.read_blob(lay, cfg_digest))
    cfg["architecture"] = "arm64"
    cb = json.dumps(cfg).encode()
    m2 = json.loads(man)
    m2["config"] = {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": images.write_blob(lay, cb), "size": len(cb)}
    mb = json.dumps(m2).encode()
    d2 = images.write_blob(lay, mb)
    r = t.run([t.prog("sealpod"), "image", "pull", "--from", "dir:" + lay, "--digest", d2,
               "example.com/arm/app@" + d2, t.path("rootfs")])
    t.check(r.returncode != 0, "an arm64 config is refused", r.stdout)
    t.check("arm64" in r.stderr and "example.com/arm/app" in r.stderr,
            "the error names the image and the platform", r.stderr)
    t.check(not os.path.exists(t.path("rootfs")), "nothing unpacked")


def test_401_without_credentials_in_the_pull(t):
    """The guest's code path (natively): a registry wanting credentials,
    none given: the error names the image and says credentials."""
    import images
    reg = images.Registry(t, htpasswd={"puller": "s3cret"})
    digest = reg.push(images.busybox_layout(), images.TAG, "private/busybox:sp")
    r = t.run([t.prog("sealpod"), "image", "pull", "--from", "registry:" + reg.url,
               "--insecure-http", "--digest", digest, "%s/private/busybox@%s" % (reg.host, digest),
               t.path("rootfs")])
    t.check(r.returncode != 0, "refused", r.stdout)
    t.check("private/busybox" in r.stderr and "credentials" in r.stderr,
            "names the image and the missing credentials", r.stderr)
    t.check(not os.path.exists(t.path("rootfs")), "nothing unpacked")
