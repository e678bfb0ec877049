"""The sealpod CLI's basics: version, help, unknown commands."""
SANITIZE = True


def test_version(t):
    r = t.run([t.prog("sealpod"), "version"])
    t.eq(r.returncode, 0, "exit code")
    t.check(r.stdout.startswith("sealpod "), "version line", r.stdout)


def test_unknown_command_names_it(t):
    r = t.run([t.prog("sealpod"), "frobnicate"])
    t.eq(r.returncode, 2, "exit code")
    t.check("frobnicate" in r.stderr, "error names the command", r.stderr)
