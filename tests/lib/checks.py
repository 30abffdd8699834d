"""Checks that go on after a failure, so one run lists every broken thing.

    from checks import check, finish
    check(r.returncode == 0, "the tool succeeds", r.stderr)
    ...
    finish("certs")   # exits 1 after listing the failures, else prints a pass line
"""
import sys

failures = []


def check(cond, what, detail=""):
    """Records WHAT as failed unless COND, printing DETAIL (the evidence)."""
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}\n{detail}", file=sys.stderr)
    return bool(cond)


def finish(name):
    if failures:
        print(f"{name}: {len(failures)} checks failed", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: all checks passed")
