"""ttRPC interop with the Go reference implementation (Debian's
golang-github-containerd-ttrpc-dev, v1.1.1, as containerd 1.6 uses), and
a hostile peer against our server.

The C peer is build/bench/ttrpc-echo; the Go peer is built from
tests/interop/ttrpc/main.go (cached under build/ttrpc-interop/). Both run
the same checks as clients (unary calls, error statuses, metadata,
timeouts, payloads near and just over 4 MiB, 100 concurrent calls)."""
import os
import socket
import struct
import subprocess
import sys
import time

import harness

sys.path.insert(0, os.path.join(harness.ROOT, "tests", "interop", "ttrpc"))
import build as gobuild  # noqa: E402

SANITIZE = True
SVC = "sealpod.test.Echo"
MAX = 4 << 20


def setup_module(m):
    try:
        # Always cached in the normal build directory, also for the ASan run.
        m.go = gobuild.build(os.path.join(harness.ROOT, "build"))
    except gobuild.Unavailable as e:
        raise harness.Failure(str(e))


def _start(t, argv, sock):
    p = t.spawn(argv, stdout=subprocess.PIPE, stderr=open(t.path("server.log"), "w"),
                text=True)
    line = p.stdout.readline()
    if line.strip() != "ready":
        raise harness.Failure("%s did not start: %r\n%s" % (argv[0], line, _log(t)))
    t.wait_for(lambda: os.path.exists(sock), 10, "socket " + sock)
    return p


def _log(t):
    try:
        with open(t.path("server.log")) as f:
            return f.read()
    except OSError:
        return ""


def _stop(t, p, what):
    """SIGTERM; the server must exit 0 (under ASan: without leaks)."""
    p.terminate()
    rc = p.wait(30)
    t.eq(rc, 0, "%s exit status after SIGTERM\n%s" % (what, _log(t)[-3000:]))


def our_server(t, name="c.sock"):
    sock = t.path(name)
    return _start(t, [t.prog("bench/ttrpc-echo"), "serve", "unix:" + sock], sock), sock


def go_server(t, name="go.sock"):
    sock = t.path(name)
    return _start(t, [t.module.go, "serve", "unix:" + sock], sock), sock


def _check_output(t, r, what):
    out = r.stdout + r.stderr
    t.check(r.returncode == 0 and "ALL OK" in r.stdout, what, out)
    t.check("FAIL" not in r.stdout, what + ": no failed check", out)
    # Every check ran (a checker that stops early must not pass).
    t.check(r.stdout.count("\nok ") + r.stdout.startswith("ok ") >= 19,
            what + ": all checks ran", out)


def test_our_client_against_go_server(t):
    p, sock = go_server(t)
    r = t.run([t.prog("bench/ttrpc-echo"), "check", "unix:" + sock], timeout=120)
    _check_output(t, r, "sealpod client -> Go server")
    _stop(t, p, "Go server")


def test_go_client_against_our_server(t):
    p, sock = our_server(t)
    r = t.run([t.module.go, "check", "unix:" + sock], timeout=120)
    _check_output(t, r, "Go client -> sealpod server")
    t.check("peer credentials" in r.stdout, "peer credentials were checked", r.stdout)
    _stop(t, p, "sealpod server")


def test_both_checkers_agree_on_our_server(t):
    """Our own client and the Go client pass the same checks against the
    same server, so the checks compare implementations, not fixtures."""
    p, sock = our_server(t)
    r = t.run([t.prog("bench/ttrpc-echo"), "check", "unix:" + sock], timeout=120)
    _check_output(t, r, "sealpod client -> sealpod server")
    _stop(t, p, "sealpod server")


# ---- hostile peer ----

def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _field(num, data):
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _request(method, data, svc=SVC):
    payload = _field(1, data) if data else b""
    return _field(1, svc.encode()) + _field(2, method.encode()) + _field(3, payload)


def _frame(body, sid, typ=1, length=None):
    return struct.pack(">IIBB", len(body) if length is None else length, sid, typ, 0) + body


def _read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def _read_response(s):
    """(stream id, status code, payload data) of the next response frame."""
    length, sid, typ, _flags = struct.unpack(">IIBB", _read_exact(s, 10))
    assert typ == 2, "frame type %d" % typ
    body = _read_exact(s, length)
    code, payload = 0, b""
    i = 0

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            b = body[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    while i < len(body):
        tag = varint()
        n = varint()
        chunk = body[i:i + n]
        i += n
        if tag == (1 << 3 | 2):  # status
            j = 0
            while j < len(chunk):
                st = chunk[j]
                j += 1
                if st == 0x08:
                    v = shift = 0
                    while True:
                        b = chunk[j]
                        j += 1
                        v |= (b & 0x7F) << shift
                        shift += 7
                        if not b & 0x80:
                            break
                    code = v
                else:  # message and details: length-delimited
                    ln = chunk[j]
                    j += 1 + ln
        elif tag == (2 << 3 | 2):
            payload = chunk[2:] if chunk else b""
    return sid, code, payload


def _connect(sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(sock)
    return s


def _hostile_answers(sock):
    """Sends the answerable hostile frames; returns [(sid, code)]."""
    s = _connect(sock)
    answers = []
    # Even stream id: INVALID_ARGUMENT on that id.
    s.sendall(_frame(_request("Echo", b"x"), 2))
    answers.append(_read_response(s)[:2])
    # Unknown frame types, responses and data frames are ignored.
    s.sendall(_frame(b"abc", 5, typ=9) + _frame(b"", 7, typ=2) + _frame(b"zz", 7, typ=3))
    # Garbage as a request: INVALID_ARGUMENT.
    s.sendall(_frame(b"\xff" * 16, 9))
    answers.append(_read_response(s)[:2])
    # Just over the limit: discarded and answered RESOURCE_EXHAUSTED.
    s.sendall(_frame(b"\0" * (MAX + 1), 11))
    answers.append(_read_response(s)[:2])
    # And the connection still serves.
    s.sendall(_frame(_request("Echo", b"alive"), 13))
    answers.append(_read_response(s)[:3])
    s.close()
    return answers


def test_hostile_peer_same_answers_as_go(t):
    want = [(2, 3), (9, 3), (11, 8), (13, 0, b"alive")]
    gp, gsock = go_server(t, "go.sock")
    t.eq(_hostile_answers(gsock), want, "Go server's answers (the reference)")
    _stop(t, gp, "Go server")
    p, sock = our_server(t)
    t.eq(_hostile_answers(sock), want, "sealpod server's answers")
    _stop(t, p, "sealpod server")


def test_hostile_peer_server_survives(t):
    p, sock = our_server(t)
    # Garbage bytes, then close.
    s = _connect(sock)
    s.sendall(os.urandom(4096))
    s.close()
    # Truncated headers.
    for n in (1, 5, 9):
        s = _connect(sock)
        s.sendall(b"\x00" * n)
        s.close()
    # A truncated body.
    s = _connect(sock)
    s.sendall(_frame(_request("Echo", b"abc"), 1)[:-2])
    s.close()
    # A 4 GiB length: that connection is closed, with a log line.
    s = _connect(sock)
    s.sendall(_frame(b"", 1, length=0xFFFFFFFF))
    t.eq(s.recv(1), b"", "connection closed after a 4 GiB length")
    s.close()
    # A length over the limit but skippable, never completed: the others go on.
    lingering = _connect(sock)
    lingering.sendall(_frame(b"", 3, length=MAX + 100) + b"\0" * 1000)
    # Reused stream id while the first is in flight: the second is refused.
    s = _connect(sock)
    s.sendall(_frame(_request("Sleep", b"300"), 21) + _frame(_request("Echo", b"dup"), 21))
    t.eq(_read_response(s)[:2], (21, 3), "reused stream id refused")
    t.eq(_read_response(s), (21, 0, b"300"), "first call on the stream id answered")
    # Many metadata entries: RESOURCE_EXHAUSTED, not an allocation storm.
    md = b"".join(_field(5, _field(1, b"k") + _field(2, b"v")) for _ in range(5000))
    s.sendall(_frame(_request("Echo", b"m") + md, 23))
    t.eq(_read_response(s)[:2], (23, 8), "too much metadata")
    s.close()
    # Well-formed calls still work, from a real client.
    r = t.run([t.prog("bench/ttrpc-echo"), "check", "unix:" + sock], timeout=120)
    _check_output(t, r, "calls after the hostile peer")
    lingering.close()
    log = _log(t)
    t.check("4294967295 bytes" in log and "closing the connection" in log,
            "the 4 GiB frame is logged", log)
    _stop(t, p, "sealpod server")
