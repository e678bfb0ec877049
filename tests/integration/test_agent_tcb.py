"""The guest agent is in the trusted computing base: it must not link the
host-side libraries (libcurl for KDS and registries, libyaml for the policy
generator, sqlite). The static library pulls objects in by symbol, so one
stray reference (tee.c -> certs.c -> a curl call) is enough to drag curl
in; this test notices."""
import subprocess

FORBIDDEN = ("libcurl", "libyaml", "libsqlite", "libmicrohttpd")


def test_agent_links_no_host_only_libraries(t):
    r = subprocess.run(["ldd", t.prog("sealpod-agent")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    t.eq(r.returncode, 0, "ldd sealpod-agent")
    libs = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    t.check(any(lib.startswith("libc.so") for lib in libs), "ldd listed libc", r.stdout)
    bad = [lib for lib in libs if lib.startswith(FORBIDDEN)]
    t.eq(bad, [], "host-only libraries linked into sealpod-agent")
