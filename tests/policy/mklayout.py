#!/usr/bin/python3
"""Writes a small OCI image layout by hand (config, manifest, index; one
empty layer) for policy tests and benchmarks. Usage:
    mklayout.py DIR NAME:TAG '{"Entrypoint":[...],"Cmd":[...],...}' [...]
Each image gets the ref.name annotation NAME:TAG."""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def blob(d, data):
    h = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(d, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(d, "blobs", "sha256", h), "wb") as f:
        f.write(data)
    return "sha256:" + h


def make(d, images):
    """images: list of (ref_name, config dict). Returns {ref: manifest digest}."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w"):
        pass
    layer = gzip.compress(raw.getvalue(), mtime=0)
    ldig = blob(d, layer)
    diff = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    out, manifests = {}, []
    for ref, cfg in images:
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": cfg,
                             "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
        cdig = blob(d, config)
        man = json.dumps({"schemaVersion": 2,
                          "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                     "digest": cdig, "size": len(config)},
                          "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                      "digest": ldig, "size": len(layer)}]}).encode()
        mdig = blob(d, man)
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "digest": mdig, "size": len(man),
                          "annotations": {"org.opencontainers.image.ref.name": ref}})
        out[ref] = mdig
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": manifests}, f)
    return out


if __name__ == "__main__":
    args = sys.argv[2:]
    imgs = [(args[i], json.loads(args[i + 1])) for i in range(0, len(args), 2)]
    for ref, dig in make(sys.argv[1], imgs).items():
        print(ref, dig)
