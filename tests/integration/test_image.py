"""Images: verified pulls from an OCI layout (directory and tar standing
in for the guest's block device), a docker-archive, the local store
(import, pack) and a real registry (docker-registry: anonymous, basic,
bearer token), plus tampering and path-escape archives that must be
refused with nothing written outside. Native for now; pulls inside a
running UVM come with the agent and launcher."""
import gzip
import json
import os
import shutil
import subprocess
import tarfile

import images

SANITIZE = True
NEEDS_ROOT = True


def setup_module(m):
    m.layout = images.busybox_layout()
    m.digest = images.manifest_digest(m.layout)


def sealpod(t, *args, env=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    return t.run([t.prog("sealpod"), "image"] + list(args), env=e)


def pull(t, store, ref, digest, dest, *extra, env=None):
    return sealpod(t, "pull", "--from", store, "--digest", digest, *extra, ref, dest, env=env)


def check_busybox(t, root):
    t.check(os.path.isfile(os.path.join(root, "bin", "busybox")), "bin/busybox")
    t.eq(os.readlink(os.path.join(root, "bin", "sh")), "busybox", "bin/sh symlink")
    t.check(os.access(os.path.join(root, "bin", "busybox"), os.X_OK), "busybox executable")
    t.check(not os.path.exists(os.path.join(root, "etc", "removed-later")), "whiteout applied")
    t.check(not os.path.exists(os.path.join(root, "opt", "gone", "file")), "opaque dir applied")
    t.check(os.path.exists(os.path.join(root, "opt", "gone", "new")), "layer-2 file")
    a = os.stat(os.path.join(root, "etc", "hostname"))
    b = os.stat(os.path.join(root, "etc", "hostname.link"))
    t.eq(a.st_ino, b.st_ino, "hard link shares the inode")
    t.eq(oct(os.stat(os.path.join(root, "tmp")).st_mode & 0o7777), oct(0o1777), "tmp mode")
    r = subprocess.run(["chroot", root, "/bin/sh", "-c", "echo ok"], stdout=subprocess.PIPE,
                       text=True)
    t.eq(r.stdout.strip(), "ok", "busybox runs in the unpacked rootfs")


def no_leftovers(t, dest):
    t.check(not os.path.exists(dest), "nothing at the destination", dest)
    parent = os.path.dirname(dest)
    stray = [n for n in os.listdir(parent) if n.startswith(os.path.basename(dest) + ".tmp")]
    t.eq(stray, [], "no temporary directories left")


def test_pull_layout_dir(t):
    dest = t.path("root")
    cfg = t.path("cfg.json")
    r = pull(t, "dir:" + t.module.layout, "busybox:latest", t.module.digest, dest,
             "--config-out", cfg)
    t.eq(r.returncode, 0, "pull exit code: " + r.stderr)
    check_busybox(t, dest)
    with open(cfg) as f:
        c = json.load(f)
    t.eq(c["config"]["Entrypoint"], ["/bin/sh"], "config entrypoint")


def test_pull_layout_tar_as_block_device(t):
    # A disk image: the tar, padded with zeros to whole MiBs as a disk is.
    disk = images.layout_tar(t.module.layout, t.path("disk.img"))
    size = os.path.getsize(disk)
    with open(disk, "ab") as f:
        f.write(b"\0" * ((1 << 20) - size % (1 << 20)))
    dest = t.path("root")
    r = pull(t, "tar:" + disk, "busybox@" + t.module.digest, t.module.digest, dest)
    t.eq(r.returncode, 0, "pull exit code: " + r.stderr)
    check_busybox(t, dest)


def test_docker_archive_import_pack_pull(t):
    arch = images.docker_archive(t.module.layout, t.path("busybox.tar"))
    store = t.path("store")
    r = sealpod(t, "import", arch, "--store", store)
    t.eq(r.returncode, 0, "import: " + r.stderr)
    name, digest = r.stdout.split()
    t.eq(name, images.NAME, "imported name")
    # The guest reads the docker-archive directly and pins the same digest.
    dest = t.path("root-arch")
    r = pull(t, "tar:" + arch, "busybox@" + digest, digest, dest)
    t.eq(r.returncode, 0, "pull from docker-archive: " + r.stderr)
    check_busybox(t, dest)
    # Import the OCI layout too, under another name, then pack both.
    r = sealpod(t, "import", t.module.layout, "--store", store, "--tag", "example.com/bb:v1")
    t.eq(r.returncode, 0, "import layout: " + r.stderr)
    t.eq(r.stdout.split()[1], t.module.digest, "layout keeps its digest")
    disk = t.path("pack.tar")
    r = sealpod(t, "pack", "--store", store, "--output", disk, "busybox", "example.com/bb:v1")
    t.eq(r.returncode, 0, "pack: " + r.stderr)
    for ref, dg, d in [("busybox", digest, "r1"), ("example.com/bb:v1", t.module.digest, "r2")]:
        r = pull(t, "tar:" + disk, ref, dg, t.path(d))
        t.eq(r.returncode, 0, "pull %s from the packed disk: %s" % (ref, r.stderr))
        check_busybox(t, t.path(d))
    r = sealpod(t, "config", "--from", "tar:" + disk, "example.com/bb:v1")
    t.eq(json.loads(r.stdout)["digest"], t.module.digest, "config resolves the tag")
    r = sealpod(t, "import", t.module.layout, "--store", store)
    t.check(r.returncode != 0 and "--tag" in r.stderr, "bare tag needs --tag", r.stderr)


def flip_member_byte(disk, member):
    with tarfile.open(disk) as tf:
        m = tf.getmember(member)
    with open(disk, "r+b") as f:
        f.seek(m.offset_data + m.size // 2)
        b = f.read(1)
        f.seek(m.offset_data + m.size // 2)
        f.write(bytes([b[0] ^ 1]))


def test_pack_holds_layers_uncompressed(t):
    # pack adds each gzip layer uncompressed, under its diff_id: the guest
    # reads that copy (no inflating, one hash) and verifies it against the
    # config's diff_id like any other blob.
    store = t.path("store")
    r = sealpod(t, "import", t.module.layout, "--store", store, "--tag", "example.com/bb:v1")
    t.eq(r.returncode, 0, "import: " + r.stderr)
    disk = t.path("pack.tar")
    r = sealpod(t, "pack", "--store", store, "--output", disk, "example.com/bb:v1")
    t.eq(r.returncode, 0, "pack: " + r.stderr)
    man = json.loads(images.read_blob(t.module.layout, t.module.digest))
    cfg = json.loads(images.read_blob(t.module.layout, man["config"]["digest"]))
    with tarfile.open(disk) as tf:
        names = tf.getnames()
        for layer, diff_id in zip(man["layers"], cfg["rootfs"]["diff_ids"]):
            t.check(layer["mediaType"].endswith("+gzip"), "the test image's layers are gzip")
            member = "blobs/sha256/" + diff_id[7:]
            t.check(member in names, "uncompressed copy of " + layer["digest"], names)
            plain = tf.extractfile(member).read()
            t.eq(plain, gzip.decompress(images.read_blob(t.module.layout, layer["digest"])),
                 "the copy is the layer uncompressed")
    dest = t.path("root")
    r = pull(t, "tar:" + disk, "example.com/bb:v1", t.module.digest, dest)
    t.eq(r.returncode, 0, "pull from the packed disk: " + r.stderr)
    check_busybox(t, dest)
    # The compressed layer is no longer read at all...
    first = man["layers"][0]["digest"]
    bad = t.path("bad-compressed.tar")
    shutil.copy(disk, bad)
    flip_member_byte(bad, "blobs/sha256/" + first[7:])
    r = pull(t, "tar:" + bad, "example.com/bb:v1", t.module.digest, t.path("root2"))
    t.eq(r.returncode, 0, "the uncompressed copy is what the pull reads: " + r.stderr)
    # ...and a tampered uncompressed copy is refused, nothing left behind.
    diff_id = cfg["rootfs"]["diff_ids"][0]
    flip_member_byte(disk, "blobs/sha256/" + diff_id[7:])
    dest = t.path("root3")
    r = pull(t, "tar:" + disk, "example.com/bb:v1", t.module.digest, dest)
    t.check(r.returncode != 0 and "uncompressed layer" in r.stderr,
            "a tampered uncompressed copy refused", r.stderr)
    no_leftovers(t, dest)


def test_tampered_layer_refused(t):
    lay = images.copy_layout(t.module.layout, t.path("lay"))
    man = json.loads(images.read_blob(lay, t.module.digest))
    layer = man["layers"][0]["digest"]
    p = os.path.join(lay, "blobs", "sha256", layer[7:])
    data = bytearray(open(p, "rb").read())
    data[len(data) // 2] ^= 1
    open(p, "wb").write(data)
    dest = t.path("root")
    r = pull(t, "dir:" + lay, "busybox", t.module.digest, dest)
    t.check(r.returncode != 0, "tampered layer refused")
    t.check(layer in r.stderr or "corrupt" in r.stderr, "error names the layer", r.stderr)
    no_leftovers(t, dest)


def test_tampered_manifest_refused(t):
    lay = images.copy_layout(t.module.layout, t.path("lay"))
    p = os.path.join(lay, "blobs", "sha256", t.module.digest[7:])
    man = json.loads(open(p).read())
    man["annotations"] = {"evil": "yes"}
    open(p, "w").write(json.dumps(man))
    dest = t.path("root")
    r = pull(t, "dir:" + lay, "busybox", t.module.digest, dest)
    t.check(r.returncode != 0, "tampered manifest refused")
    t.check("pinned" in r.stderr and t.module.digest in r.stderr, "error names the pin", r.stderr)
    no_leftovers(t, dest)


def test_swapped_layer_with_valid_digest_refused(t):
    # The host replaces a layer by another well-formed blob and rewrites
    # the manifest to match: the manifest digest then differs from the pin.
    lay = images.copy_layout(t.module.layout, t.path("lay"))
    man = json.loads(images.read_blob(lay, t.module.digest))
    evil = images.tar_bytes([("bin/busybox", "file", b"#!/bin/sh\necho pwned\n")])
    man["layers"][1] = {"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": images.write_blob(lay, evil), "size": len(evil)}
    new = images.write_blob(lay, json.dumps(man).encode())
    dest = t.path("root")
    r = pull(t, "dir:" + lay, "busybox@" + new, t.module.digest, dest)
    t.check(r.returncode != 0 and "differs from the policy" in r.stderr,
            "reference digest differing from the policy refused", r.stderr)
    r = pull(t, "dir:" + lay, "busybox@" + new, new, dest)
    t.check(r.returncode != 0 and "uncompressed layer" in r.stderr,
            "a layer that differs from the config's diff_id refused", r.stderr)
    no_leftovers(t, dest)


def test_policy_digest_mismatch_refused(t):
    dest = t.path("root")
    other = "sha256:" + "0" * 64
    r = pull(t, "dir:" + t.module.layout, "busybox:latest", other, dest)
    t.check(r.returncode != 0, "unknown pinned digest refused")
    t.check(other in r.stderr, "error names the digest", r.stderr)
    r = sealpod(t, "pull", "--from", "dir:" + t.module.layout, "busybox:latest", dest)
    t.check(r.returncode != 0 and "pinned" in r.stderr, "pull without a pin refused", r.stderr)
    no_leftovers(t, dest)


def test_size_limit(t):
    dest = t.path("root")
    r = pull(t, "dir:" + t.module.layout, "busybox", t.module.digest, dest,
             "--max-bytes", "200000")
    t.check(r.returncode != 0 and "size limit" in r.stderr, "size limit enforced", r.stderr)
    no_leftovers(t, dest)


ESCAPES = {
    "dotdot": [("../escaped", "file", b"x")],
    "nested-dotdot": [("a/../../escaped", "file", b"x")],
    "absolute": [("/escaped", "file", b"x")],
    "symlink-dir": [("link", "symlink", "OUTSIDE"), ("link/escaped", "file", b"x")],
    "symlink-relative": [("link", "symlink", "../../outside"), ("link/escaped", "file", b"x")],
    "hardlink-dotdot": [("hl", "hardlink", "../outside/secret")],
    "hardlink-via-symlink": [("link", "symlink", "OUTSIDE"), ("hl", "hardlink", "link/secret")],
    "symlink-then-write": [("d", "dir", None), ("d/f", "symlink", "OUTSIDE/secret"),
                           ("d", "symlink", "OUTSIDE"), ("d/secret", "file", b"x")],
}


def run_escape(t, name, env=None):
    outside = t.path("outside")
    os.makedirs(outside, exist_ok=True)
    secret = os.path.join(outside, "secret")
    with open(secret, "w") as f:
        f.write("keep")
    entries = [(n, k, a.replace("OUTSIDE", outside) if isinstance(a, str) else a)
               for n, k, a in ESCAPES[name]]
    lay = t.path("lay-" + name)
    dg = images.make_layout(lay, [images.tar_bytes(entries)])
    # the layout is a sibling of dest so "../outside" is a real target
    dest = t.path("root-" + name)
    r = pull(t, "dir:" + lay, "evil", dg, dest, env=env)
    t.check(r.returncode != 0, "%s archive refused" % name, r.stdout + r.stderr)
    t.check("refused" in r.stderr, "%s: a clear refusal" % name, r.stderr)
    t.eq(sorted(os.listdir(outside)), ["secret"], "%s: nothing written outside" % name)
    t.eq(open(secret).read(), "keep", "%s: outside file unchanged" % name)
    t.check(not os.path.exists(t.path("escaped")), "%s: no escaped file" % name)
    no_leftovers(t, dest)


def test_path_escapes_refused(t):
    for name in ESCAPES:
        run_escape(t, name)


def test_path_escapes_refused_without_openat2(t):
    for name in ESCAPES:
        run_escape(t, name, env={"SP_IMAGE_NO_OPENAT2": "1"})


def test_layer_cache_overlay(t):
    cache = t.path("cache")
    os.makedirs(cache)
    d1, d2 = t.path("c1"), t.path("c2")
    for d in (d1, d2):
        r = pull(t, "dir:" + t.module.layout, "busybox", t.module.digest, d, "--cache", cache)
        t.eq(r.returncode, 0, "pull with the cache: " + r.stderr)
        t.cleanup(lambda d=d: subprocess.run(["umount", "-l", d]))
    man = json.loads(images.read_blob(t.module.layout, t.module.digest))
    t.eq(len([n for n in os.listdir(cache) if not n.startswith(".")]), len(man["layers"]),
         "each layer unpacked once")
    with open("/proc/self/mounts") as f:
        mounts = f.read()
    t.check(" %s overlay " % d1 in mounts, "rootfs is an overlay", mounts[-500:])
    check_busybox(t, d1)
    with open(os.path.join(d1, "etc", "motd"), "w") as f:
        f.write("changed")
    t.eq(open(os.path.join(d2, "etc", "motd")).read(), "sealpod test image\n",
         "containers do not share writes")


# ---- registry ----

def test_registry_pull(t):
    reg = images.Registry(t)
    gz = reg.push(t.module.layout, images.TAG, "test/busybox:gzip")
    zs = reg.push(t.module.layout, images.TAG, "test/busybox:zstd", compress="zstd")
    v2 = reg.push(t.module.layout, images.TAG, "test/busybox:v2s2", fmt="v2s2")
    for tag, dg in [("gzip", gz), ("zstd", zs), ("v2s2", v2)]:
        ref = "%s/test/busybox:%s" % (reg.host, tag)
        r = sealpod(t, "config", "--from", "registry:" + reg.url, "--insecure-http", ref)
        t.eq(r.returncode, 0, "config %s: %s" % (tag, r.stderr))
        t.eq(json.loads(r.stdout)["digest"], dg, "tag %s resolves to the pushed digest" % tag)
        dest = t.path("root-" + tag)
        r = pull(t, "registry:" + reg.url, ref, dg, dest, "--insecure-http")
        t.eq(r.returncode, 0, "pull %s: %s" % (tag, r.stderr))
        check_busybox(t, dest)
    # Without the flag, plain http is refused.
    r = pull(t, "registry:" + reg.url, "%s/test/busybox:gzip" % reg.host, gz, t.path("x"))
    t.check(r.returncode != 0 and "plain http" in r.stderr, "http refused by default", r.stderr)
    r = pull(t, "registry:" + reg.url, "%s/test/busybox:gzip" % reg.host,
             "sha256:" + "1" * 64, t.path("z"), "--insecure-http")
    t.check(r.returncode != 0, "unknown digest refused")
    no_leftovers(t, t.path("z"))


def test_registry_basic_auth(t):
    reg = images.Registry(t, htpasswd={"alice": "s3cret"})
    dg = reg.push(t.module.layout, images.TAG, "test/busybox:auth")
    ref = "%s/test/busybox:auth" % reg.host
    r = pull(t, "registry:" + reg.url, ref, dg, t.path("noauth"), "--insecure-http")
    t.check(r.returncode != 0 and "credentials" in r.stderr, "anonymous refused", r.stderr)
    pw = t.path("pw")
    with open(pw, "w") as f:
        f.write("s3cret\n")
    r = pull(t, "registry:" + reg.url, ref, dg, t.path("root"), "--insecure-http",
             "--username", "alice", "--password-file", pw)
    t.eq(r.returncode, 0, "basic auth pull: " + r.stderr)
    check_busybox(t, t.path("root"))


def test_registry_bearer_token(t):
    reg = images.Registry(t)
    dg = reg.push(t.module.layout, images.TAG, "test/busybox:tok")
    proxy = images.TokenProxy(t, reg, user="bob", password="pw")
    ref = "%s/test/busybox:tok" % proxy.host
    pw = t.path("pw")
    with open(pw, "w") as f:
        f.write("pw")
    r = pull(t, "registry:" + proxy.url, ref, dg, t.path("root"), "--insecure-http",
             "--username", "bob", "--password-file", pw)
    t.eq(r.returncode, 0, "bearer pull: " + r.stderr)
    check_busybox(t, t.path("root"))
    t.check(proxy.tokens_issued() >= 1, "a token was fetched")
    with open(pw, "w") as f:
        f.write("wrong")
    r = pull(t, "registry:" + proxy.url, ref, dg, t.path("root2"), "--insecure-http",
             "--username", "bob", "--password-file", pw)
    t.check(r.returncode != 0 and "token" in r.stderr, "bad credentials refused", r.stderr)


def test_registry_https(t):
    """https with a private CA: trusted only with that CA, and only for a
    certificate naming the address pulled from (IP SAN)."""
    pki = images.make_pki(t.path("pki"))
    other = images.make_pki(t.path("pki"), name="other")
    reg = images.Registry(t, tls=pki)
    dg = reg.push(t.module.layout, images.TAG, "test/busybox:tls")
    ref = "%s/test/busybox:tls" % reg.host
    r = sealpod(t, "config", "--from", "registry:" + reg.url, "--ca-file", pki["ca"], ref)
    t.eq(r.returncode, 0, "config over https: " + r.stderr)
    t.eq(json.loads(r.stdout)["digest"], dg, "the tag resolves to the pushed digest")
    r = pull(t, "registry:" + reg.url, ref, dg, t.path("root"), "--ca-file", pki["ca"])
    t.eq(r.returncode, 0, "pull over https with the CA: " + r.stderr)
    check_busybox(t, t.path("root"))
    # No CA (the system store does not know it) and another CA: refused
    # in the handshake, nothing written.
    for name, extra in [("none", []), ("wrong", ["--ca-file", other["ca"]])]:
        dest = t.path("root-" + name)
        r = pull(t, "registry:" + reg.url, ref, dg, dest, *extra)
        t.check(r.returncode != 0 and "TLS to 127.0.0.1 failed" in r.stderr
                and "certificate" in r.stderr, "%s CA refused" % name, r.stderr)
        no_leftovers(t, dest)
    # A certificate from the right CA for another address is refused too.
    wrong_ip = images.make_pki(t.path("pki"), ips=("10.0.2.2",), name="ipmismatch")
    reg2 = images.Registry(t, tls=wrong_ip)
    r = pull(t, "registry:" + reg2.url, "%s/test/busybox:tls" % reg2.host, dg, t.path("r2"),
             "--ca-file", wrong_ip["ca"])
    t.check(r.returncode != 0 and "IP address mismatch" in r.stderr,
            "certificate for another IP refused", r.stderr)
    # The generator reads the config over https with --registry-ca and pins
    # the CA in the policy for the registry as a UVM reaches it.
    pod = t.path("pod.yaml")
    with open(pod, "w") as f:
        f.write("apiVersion: v1\nkind: Pod\nmetadata: {name: tls}\nspec:\n  containers:\n"
                "  - name: c\n    image: %s\n    command: [\"/bin/true\"]\n" % ref)
    r = t.run([t.prog("sealpod"), "policy", "gen", pod, "--registry", reg.url,
               "--registry-ca", pki["ca"]])
    t.eq(r.returncode, 0, "policy gen over https: " + r.stderr)
    import base64
    import yaml
    ann = yaml.safe_load(r.stdout)["metadata"]["annotations"]["io.sealpod.policy"]
    pol = json.loads(base64.b64decode(ann))
    with open(pki["ca"]) as f:
        t.eq(pol.get("registries"), [{"host": "10.0.2.2:%d" % reg.port, "ca": f.read()}],
             "policy.registries pins the CA for 10.0.2.2:PORT")
    t.check(pol["containers"][0]["image"].endswith("@" + dg), "image pinned", pol["containers"][0]["image"])
    r = t.run([t.prog("sealpod"), "policy", "gen", pod, "--registry", reg.url,
               "--registry-ca", t.path("pod.yaml")])
    t.check(r.returncode != 0 and "PEM" in r.stderr, "a CA file that is no PEM refused", r.stderr)
