"""cs_sync and the daemon's sync socket (scenario `sync` of harness.py).

wl-sync runs under `checksync run` and calls cs_sync() on each SIGUSR2; a fake
daemon (tests/lib/fakesync.py) listens on DIR/sync.sock and answers as each
case wants. cs_sync must return what the daemon said (0, or -ERRNO of its
error), its own errors when the daemon cannot be reached or does not answer,
and exactly what it did before when no daemon runs the program. Last, a
process checkpointed while it waits in cs_sync, restored from a copy of its
chain in another directory with another daemon, finishes the call there: a
new checkpoint, acknowledged by the new daemon.
"""

import errno
import os
import shutil
import signal
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from crlib import App, images, log  # noqa: E402
import fakesync  # noqa: E402

TIMEOUT_MS = 4000  # the agent's last resort, shortened for the "never" case


class SyncApp:
    def __init__(self, h):
        self.h = h
        self.app = App(h, "wl-sync", interval_ms=100,
                       env={"CHECKSYNC_SYNC_TIMEOUT_MS": str(TIMEOUT_MS)})
        self.calls = 0

    def request(self):
        """Asks for one cs_sync; returns the number of the call."""
        self.calls += 1
        self.app.signal(signal.SIGUSR2)
        return self.calls

    def answer(self, n, timeout=30):
        """(rc, generation) of call n."""
        _, m = self.app.proc.wait_line(r"^sync %d rc=(-?\d+) gen=(\d+)$" % n, timeout,
                                       "the answer to cs_sync call %d" % n)
        return int(m.group(1)), int(m.group(2))

    def call(self, what, want_rc, daemon=None):
        rc, gen = self.answer(self.request(), TIMEOUT_MS / 1000 + 30)
        if rc != want_rc:
            self.h.fail("cs_sync with %s returned %d (%s), want %d (%s)" %
                        (what, rc, os.strerror(-rc) if rc < 0 else "ok", want_rc,
                         os.strerror(-want_rc) if want_rc < 0 else "ok"), self.app.proc)
        if daemon is not None:
            reqs = daemon.wait_requests(1, 5)
            if reqs != ["wait %d" % gen]:
                self.h.fail("cs_sync with %s: the daemon received %r, want ['wait %d'] (the "
                            "generation cs_sync returned)" % (what, reqs, gen), self.app.proc)
        log("  %s: cs_sync returned %d, generation %d" % (what, rc, gen))
        return gen


def stale_socket_file(path):
    """A socket file nobody listens on (a daemon that died)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)
    s.close()


def answers(h, s):
    d = s.app.dir
    s.call("no sync.sock (standalone)", 0)
    cases = [
        ("a daemon that acknowledges", "ok", 0),
        ("no backup up", ("error", errno.EHOSTUNREACH), -errno.EHOSTUNREACH),
        ("no longer the primary's", ("error", errno.ESTALE), -errno.ESTALE),
        ("backups too slow", ("error", errno.ETIMEDOUT), -errno.ETIMEDOUT),
        ("an acknowledgement of an older generation", ("raw", "ok 0"), -errno.EPROTO),
        ("a daemon that closes without answering", "close", -errno.ECONNRESET),
        ("a daemon that never answers (%d ms)" % TIMEOUT_MS, "never", -errno.ETIMEDOUT),
    ]
    for what, mode, want in cases:
        with fakesync.FakeSync(d, mode) as daemon:
            s.call(what, want, daemon)
    stale_socket_file(os.path.join(d, "sync.sock"))
    s.call("a sync.sock nobody listens on", -errno.ENOTCONN)
    os.unlink(os.path.join(d, "sync.sock"))
    s.call("sync.sock gone again", 0)


def restored_while_waiting(h, s):
    """Checkpointed inside cs_sync, restored elsewhere: the call completes there."""
    app = s.app
    with fakesync.FakeSync(app.dir, "never") as old_daemon:
        n = s.request()
        if not old_daemon.wait_requests(1, 10):
            h.fail("cs_sync call %d never reached the daemon's sync.sock" % n, app.proc)
        before = app.progress()
        taken = app.checkpoint()  # the main thread waits in recv() meanwhile
        app.kill()
    new_dir = h.mkdtemp("moved")
    for _, path in images(app.dir):
        shutil.copy2(path, new_dir)
    app.dir = new_dir
    with fakesync.FakeSync(new_dir, "ok") as new_daemon:
        app.restore()
        rc, gen = s.answer(n)
        reqs = new_daemon.wait_requests(1, 5)
        if rc != 0 or gen <= taken or reqs != ["wait %d" % gen]:
            h.fail("restored inside cs_sync (checkpoint %d): it returned %d with generation %d, "
                   "the new daemon received %r; want 0, a generation above %d taken after the "
                   "restore, and ['wait <it>']" % (taken, rc, gen, reqs, taken), app.proc)
        log("  restored inside cs_sync: it returned 0 with generation %d, acknowledged by "
            "the daemon of %s" % (gen, new_dir))
        app.check_continued(before)
        app.verify()


def sc_sync(h):
    s = SyncApp(h)
    s.app.run()
    answers(h, s)
    restored_while_waiting(h, s)
