"""Runs the integration test modules, in parallel across modules, each
module in its own process; reports (name, PASS|FAIL|SKIP, detail)."""
import concurrent.futures
import glob
import importlib
import json
import os
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE_TIMEOUT = int(os.environ.get("SP_MODULE_TIMEOUT", "900"))


def run_module(path, pattern):
    """In the child: import the module, run its tests, print JSON lines."""
    sys.path.insert(0, HERE)
    import harness
    name = os.path.basename(path)[:-3]
    mod = importlib.import_module(name)
    tests = sorted(n for n in dir(mod) if n.startswith("test_") and callable(getattr(mod, n)))
    if pattern:
        tests = [n for n in tests if pattern in name + "." + n]
    tests.sort(key=lambda n: getattr(getattr(mod, n), "__code__").co_firstlineno)

    def emit(test, status, detail=""):
        print("@@RESULT " + json.dumps({"name": name + "." + test, "status": status,
                                        "detail": detail}), flush=True)

    if not tests:
        return
    if getattr(mod, "NEEDS_ROOT", False) and os.geteuid() != 0:
        for t in tests:
            emit(t, "SKIP", "needs root")
        return
    m = harness.Module(name)
    try:
        if hasattr(mod, "setup_module"):
            mod.setup_module(m)
    except harness.Skip as e:
        for t in tests:
            emit(t, "SKIP", str(e))
        m.close()
        return
    except Exception:
        detail = traceback.format_exc()
        for t in tests:
            emit(t, "FAIL", "setup_module failed:\n" + detail)
        m.close()
        return
    for tname in tests:
        t = harness.Test(tname, m)
        start = time.time()
        status, detail = "PASS", ""
        try:
            getattr(mod, tname)(t)
        except harness.Skip as e:
            status, detail = "SKIP", str(e)
        except Exception:
            status, detail = "FAIL", traceback.format_exc()
        errs = t.close()
        if errs and status == "PASS":
            status, detail = "FAIL", "cleanup failed: " + "; ".join(errs)
        sys.stderr.write("%s %s.%s (%.1fs)\n" % (status, name, tname, time.time() - start))
        emit(tname, status, detail)
    try:
        if hasattr(mod, "teardown_module"):
            mod.teardown_module(m)
    finally:
        m.close()


def run_all(root, pattern, asan):
    files = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    jobs = []
    for f in files:
        jobs.append((f, os.path.join(root, "build"), False))
        if asan:
            with open(f) as fh:
                if "\nSANITIZE = True" in fh.read():
                    jobs.append((f, os.path.join(root, "build-asan"), True))

    def one(job):
        f, b, san = job
        env = dict(os.environ, SP_BUILD=b, SP_SANITIZED="1" if san else "0",
                   ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        tag = os.path.basename(f)[:-3] + (" [asan]" if san else "")
        start = time.time()
        out = []
        try:
            p = subprocess.run([sys.executable, os.path.abspath(__file__), f, pattern or ""],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=MODULE_TIMEOUT)
            text = p.stdout
            rc = p.returncode
        except subprocess.TimeoutExpired as e:
            text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            rc = "timeout"
        seen = False
        for line in text.splitlines():
            if line.startswith("@@RESULT "):
                r = json.loads(line[9:])
                seen = True
                name = r["name"] + (" [asan]" if san else "")
                out.append((name, r["status"], r["detail"]))
        log = "\n".join(l for l in text.splitlines() if not l.startswith("@@RESULT "))
        if rc != 0:
            out.append((tag, "FAIL", "module exited %s\n%s" % (rc, log[-4000:])))
        elif not seen and pattern is None:
            out.append((tag, "FAIL", "module ran no test\n" + log[-2000:]))
        return tag, time.time() - start, out, log

    results = []
    workers = int(os.environ.get("SP_JOBS", str(max(2, os.cpu_count() or 2))))
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        for tag, dur, out, log in ex.map(one, jobs):
            for name, status, detail in out:
                print("%-5s %s" % (status, name))
                if status == "FAIL":
                    print("      " + detail.replace("\n", "\n      ")[-6000:])
            print("      (%s: %.1fs)" % (tag, dur), flush=True)
            results += out
    return results


if __name__ == "__main__":
    run_module(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None)
