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


def test_agent_thread_local_storage_is_small(t):
    """Every thread of the agent (about a hundred: the ttRPC workers)
    gets its own copy of the agent's thread-local storage, zeroed when the
    thread starts: a buffer declared __thread costs its size a hundred
    times over in guest memory (it once cost 10 MiB per pod)."""
    r = subprocess.run(["readelf", "-lW", t.prog("sealpod-agent")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    t.eq(r.returncode, 0, "readelf -l sealpod-agent")
    tls = [line.split() for line in r.stdout.splitlines() if line.split()[:1] == ["TLS"]]
    # No TLS segment at all is fine too; otherwise MemSiz is field 5.
    size = int(tls[0][5], 16) if tls else 0
    t.check(size <= 1024, "the agent's TLS segment is %d bytes (at most 1 KiB)" % size)
