#!/usr/bin/env python3
"""Second stage of a systemd test host: runs as PID 1 of the host's new PID,
mount, UTS, IPC, network and cgroup namespaces (syshost.py starts it under
`unshare`), makes ROOT (an overlay over the machine's / whose upper layer
is the test's) the root of its mount namespace, checks that it is, and only
then executes PROGRAM (systemd).

    boot.py ROOT UPPER MACHINE_ROOT_DEV [--ro SOURCE TARGET]... -- PROGRAM ARGS...

--ro binds SOURCE (a path of the machine) read-only at TARGET of the root.
The test hosts need that for the files their app maps: in an overlay,
/proc/PID/maps names a file by the device of the layer it comes from while
stat() gives the overlay's device, so checksync's capture cannot tell that
a mapped file is the one it opened and records no identity for it, and a
restore on another host refuses every such file.

The checks matter: a booted systemd runs systemd-tmpfiles, which empties
/tmp and more of whatever file system it sees. So PROGRAM is executed only
when "/" is the overlay with the test's upper directory, /tmp, /var/tmp and
/run are fresh tmpfs instances of this namespace, /proc/sys and /sys are
read-only (systemd-sysctl and friends would change the machine's kernel
settings), and no writable mount of the machine's root device
(MACHINE_ROOT_DEV, major:minor) is left in the namespace (the old root is
detached; the --ro binds are read-only). Anything else exits 1.
"""
import ctypes
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155  # x86_64
PR_CAPBSET_DROP = 24
# Capabilities no test host needs and that reach the machine beyond the
# namespaces: modules, raw I/O, process accounting, the kernel log, LSMs,
# audit, wake alarms, suspend. CAP_SYS_TIME stays: checksync's restore
# writes the offsets of the app's time namespace, which needs it (the
# clock itself is not touched: the host masks systemd-timesyncd).
DROPPED_CAPS = {"sys_module": 16, "sys_rawio": 17, "sys_pacct": 20, "audit_control": 30,
                "mac_override": 32, "mac_admin": 33, "syslog": 34, "wake_alarm": 35,
                "block_suspend": 36}
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")


def fail(msg):
    print("boot.py: refusing to boot: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def mount(src, target, fstype, flags=0, data=None):
    enc = (lambda s: s.encode() if s is not None else None)
    if libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        e = ctypes.get_errno()
        fail("mount %s on %s: %s" % (fstype or src, target, os.strerror(e)))


def bind_readonly(path, extra=0):
    mount(path, path, None, MS_BIND)
    mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | extra)


def bind_readonly_from(src, target):
    mount(src, target, None, MS_BIND)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def make_dev(root):
    """A private /dev: the few harmless nodes, bound from the machine's, a
    new devpts instance and /dev/shm. No /dev/kmsg (journald would read the
    machine's kernel log), no disks."""
    dev = root + "/dev"
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755")
    for n in DEV_NODES:
        open(os.path.join(dev, n), "w").close()
        mount("/dev/" + n, os.path.join(dev, n), None, MS_BIND)
    os.mkdir(dev + "/pts")
    mount("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.symlink("pts/ptmx", dev + "/ptmx")
    os.mkdir(dev + "/shm")
    mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for i, n in enumerate(("stdin", "stdout", "stderr")):
        os.symlink("/proc/self/fd/%d" % i, os.path.join(dev, n))
    os.symlink("/proc/self/fd", dev + "/fd")


def make_mounts(root):
    for d, mode in (("tmp", "1777"), ("var/tmp", "1777"), ("run", "0755")):
        mount("tmpfs", os.path.join(root, d), "tmpfs", MS_NOSUID | MS_NODEV, "mode=" + mode)
    # The proof that systemd-tmpfiles ran on this /tmp: the test finds it gone.
    open(os.path.join(root, "tmp", "cs-doomed"), "w").close()
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    bind_readonly(root + "/proc/sys", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if os.path.exists(root + "/proc/sysrq-trigger"):
        bind_readonly(root + "/proc/sysrq-trigger", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("sysfs", root + "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # cgroup2 of this cgroup namespace: the subtree syshost.py made for us.
    mount("cgroup2", root + "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    make_dev(root)


def pivot(root):
    """root becomes "/", the machine's root is detached from this namespace."""
    os.chdir(root)
    if libc.syscall(SYS_PIVOT_ROOT, b".", b".") != 0:
        fail("pivot_root: %s" % os.strerror(ctypes.get_errno()))
    if libc.umount2(b".", MNT_DETACH) != 0:
        fail("detaching the old root: %s" % os.strerror(ctypes.get_errno()))
    os.chdir("/")


def mounts():
    """{mount point: (major:minor, fstype, mount options, super options)}."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ")
            fields, tail = left.split(), right.split()
            found[fields[4]] = (fields[2], tail[0], fields[5], tail[2] if len(tail) > 2 else "")
    return found


def check_isolation(upper, machine_dev):
    m = mounts()
    if m.get("/", ("", "", "", ""))[1] != "overlay" or "upperdir=" + upper not in m["/"][3]:
        fail("/ is not the test's overlay: %s" % (m.get("/"),))
    for d in ("/tmp", "/var/tmp", "/run", "/dev"):
        if m.get(d, ("", ""))[1] != "tmpfs":
            fail("%s is not a private tmpfs: %s" % (d, m.get(d)))
    for d in ("/proc/sys", "/sys"):
        if "ro" not in m.get(d, ("", "", ""))[2].split(","):
            fail("%s is not read-only: %s" % (d, m.get(d)))
    leaked = [p for p, v in m.items()
              if v[0] == machine_dev and "ro" not in v[2].split(",")]
    if leaked:
        fail("the machine's root device is still writable here: %s" % leaked)
    if not os.path.exists("/tmp/cs-doomed"):
        fail("/tmp is not the tmpfs this script mounted")


def main():
    if os.getpid() != 1 or "--" not in sys.argv:
        fail("usage: boot.py ROOT UPPER MACHINE_ROOT_DEV -- PROGRAM ARGS (as PID 1)")
    root, upper, machine_dev = sys.argv[1:4]
    dash = sys.argv.index("--")
    options, program = sys.argv[4:dash], sys.argv[dash + 1:]
    binds = [(options[i + 1], options[i + 2]) for i in range(0, len(options), 3)
             if options[i] == "--ro"]
    make_mounts(root)
    for src, dst in binds:
        target = os.path.join(root, dst.lstrip("/"))
        os.makedirs(target, exist_ok=True)
        bind_readonly_from(src, target)
    pivot(root)
    check_isolation(upper, machine_dev)
    for cap in DROPPED_CAPS.values():
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            fail("dropping capability %d: %s" % (cap, os.strerror(ctypes.get_errno())))
    sys.stdout.flush()
    os.execve(program[0], program, {"container": "checksync-test",
                                     "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


if __name__ == "__main__":
    main()
