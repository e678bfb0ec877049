"""The module fixture test_shim and test_shim_cri share: a guest image, the
pod's image as an OCI layout and tarball, its policy, a runtime config for
TCG UVMs and one real containerd (own root, state and sockets under the
module's directory) with the image imported."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cri"))

import harness  # noqa: E402
import shimtest  # noqa: E402


PAUSE = "docker.io/library/sp-pause:1"
RUNC_RUNTIME = '''    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]'''


def setup(m, pod, image, ns="default", vm=None, runc=False):
    """Fills m.guest, m.layout, m.image_tar, m.policy, m.runtime_config and
    m.cd (started, stopped at module cleanup). vm: extra runtime-config
    keys. runc: a `runc` runtime handler next to sealpod's, with a pause
    image that sleeps (runc pods keep their sandbox process)."""
    build = harness.build_dir()
    # The guest always runs the normal build's agent: a sanitizer runtime
    # has no place in the guest image; the sanitized shim runs on the host.
    plain = os.path.join(harness.ROOT, "build")
    m.guest = shimtest.guest_image(plain if os.path.exists(os.path.join(plain, "sealpod-agent"))
                                   else build)
    m.layout = m.path("layout")
    shimtest.make_image_layout(m.layout, image)
    m.image_tar = m.path("image.tar")
    shimtest.tar_layout(m.layout, m.image_tar)
    m.policy = shimtest.policy_for(build, pod, m.layout, m.tmp)
    with open(os.path.join(m.guest, "cmdline")) as f:
        cmdline = f.read().strip()
    m.runtime_config = m.path("runtime.json")
    config = {
        "backend": "vm",
        "kernel": os.path.join(m.guest, "vmlinuz"),
        "initrd": os.path.join(m.guest, "initrd.img"),
        "kernel_cmdline": cmdline,
        "accel": "tcg",
        "tee": "sim",
        "memory_mib": 512,
        "image_store": m.image_tar,
        "state_dir": m.path("run"),
        "boot_timeout_s": 300,
        "log_level": "debug",
    }
    config.update(vm or {})
    with open(m.runtime_config, "w") as f:
        json.dump(config, f)
    m.cd = shimtest.Containerd(m.path("cd"), build, pause=PAUSE if runc else image, env={
        "SEALPOD_CONFIG": m.runtime_config,
        "SEALPOD_SIM_STATE": m.path("sim"),
        "SEALPOD_SHIM_LOG": m.path("shim.log"),
    })
    if runc:
        with open(m.cd.config) as f:
            text = f.read()
        text = text.replace('  [plugins."io.containerd.grpc.v1.cri".cni]', RUNC_RUNTIME)
        # This host lets no process lower its oom_score_adj (pause asks).
        text = text.replace('  disable_tcp_service = true',
                            '  disable_tcp_service = true\n  restrict_oom_score_adj = true')
        with open(m.cd.config, "w") as f:
            f.write(text)
    m.cd.start(m.spawn)
    m.cleanup(m.cd.stop)
    m.cd.ctr(["image", "import", m.image_tar], ns=ns)
    if runc:
        pause_layout = m.path("pause-layout")
        shimtest.make_image_layout(pause_layout, PAUSE, cmd=["/bin/sleep", "100000"])
        pause_tar = m.path("pause.tar")
        shimtest.tar_layout(pause_layout, pause_tar)
        m.cd.ctr(["image", "import", pause_tar], ns=ns)


def diag(m, lines):
    """The last lines of the shim log and of containerd's, for a failure."""
    try:
        with open(m.path("shim.log")) as f:
            shim = "".join(f.readlines()[-lines:])
    except OSError:
        shim = "(no shim log)"
    return "shim log:\n%s\ncontainerd:\n%s" % (shim, m.cd.log_tail(30))
