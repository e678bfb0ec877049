"""Integration-test harness: drives sealpod's real programs and cleans up
after them (processes, temporary directories), whatever the test did.

A test module is tests/integration/test_*.py with functions `test_*(t)`,
where `t` is a Test:

    def test_version(t):
        r = t.run([t.prog("sealpod"), "version"])
        t.check(r.returncode == 0, "exit code")
        t.check("sealpod" in r.stdout, "output")

Module-level options:
    SANITIZE = True        also run against the ASan/UBSan build
    NEEDS_ROOT = True      skip (not fail) when not root
    setup_module(m) / teardown_module(m): shared state on `m` (a Module),
        e.g. one booted UVM shared by the module's tests.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Skip(Exception):
    """Raised to skip a test, with the reason."""


class Failure(AssertionError):
    pass


def build_dir():
    return os.environ.get("SP_BUILD", os.path.join(ROOT, "build"))


def prog(name):
    p = os.path.join(build_dir(), name)
    if not os.path.exists(p):
        raise Failure("program %s was not built (%s)" % (name, p))
    return p


class Procs:
    """Processes started by a test, each in its own process group, all
    killed (group and all) when the test ends."""

    def __init__(self):
        self.procs = []

    def spawn(self, argv, **kw):
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop_all(self, grace=3.0):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + grace
        for p in self.procs:
            try:
                p.wait(max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []


class Base:
    def __init__(self, name):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="sp-it-")
        self.procs = Procs()
        self.cleanups = []

    def prog(self, name):
        return prog(name)

    @property
    def build(self):
        return build_dir()

    @property
    def sanitized(self):
        return os.environ.get("SP_SANITIZED") == "1"

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def spawn(self, argv, **kw):
        return self.procs.spawn(argv, **kw)

    def run(self, argv, timeout=120, check=False, **kw):
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        r = subprocess.run(argv, timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise Failure("%s exited %d\nstdout: %s\nstderr: %s" % (
                " ".join(argv), r.returncode, r.stdout, r.stderr))
        return r

    def cleanup(self, fn):
        self.cleanups.append(fn)

    def close(self):
        errors = []
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # keep cleaning up
                errors.append(repr(e))
        self.procs.stop_all()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return errors


class Module(Base):
    pass


class Test(Base):
    def __init__(self, name, module):
        super().__init__(name)
        self.module = module

    def check(self, cond, what, detail=""):
        if not cond:
            raise Failure("check failed: %s%s" % (what, ("\n" + str(detail)) if detail else ""))

    def eq(self, got, want, what):
        if got != want:
            raise Failure("%s: got %r, want %r" % (what, got, want))

    def skip(self, reason):
        raise Skip(reason)

    def wait_for(self, cond, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.05)
        raise Failure("timed out after %.0fs waiting for %s" % (timeout, what))
