"""A fake daemon sync socket (DIR/sync.sock) for tests of cs_sync (stdlib only).

checksyncd listens on DIR/sync.sock while it runs an application; the agent's
cs_sync() sends "wait G" there and waits for "ok G2" or "error ERRNO
SENTENCE" (agent/include/cs_agent_abi.h). This stands in for the daemon so a
test decides the answer:

    import fakesync
    with fakesync.FakeSync(dir) as f:
        f.mode = "ok"              # "ok", ("error", errno.EHOSTUNREACH),
                                   # "never" (holds the connection), "close"
        ...                        # the program calls cs_sync
        f.wait_requests(1, 10)     # ["wait 7"]: what it received, in order

Leaving the block closes the listener, every held connection, and removes the
socket file, even on failure.
"""
import os
import socket
import threading
import time


class FakeSync:
    def __init__(self, directory, mode="ok"):
        self.path = os.path.join(directory, "sync.sock")
        self.mode = mode
        self.requests = []
        self.held = []
        self.cond = threading.Condition()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.closing = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            conn.settimeout(10)
            try:
                req = conn.recv(256).decode(errors="replace")
            except OSError:
                conn.close()
                continue
            with self.cond:
                self.requests.append(req)
                mode = self.mode
                self.cond.notify_all()
            self._answer(conn, req, mode)

    def _answer(self, conn, req, mode):
        if mode == "never":
            self.held.append(conn)  # closed by close(): the agent must time out first
            return
        if mode == "ok":
            conn.send(("ok %s" % req.split()[-1]).encode())
        elif isinstance(mode, tuple) and mode[0] == "error":
            conn.send(("error %d %s" % (mode[1], os.strerror(mode[1]))).encode())
        elif isinstance(mode, tuple) and mode[0] == "raw":
            conn.send(mode[1].encode())
        conn.close()  # "close": no answer at all

    def wait_requests(self, n, timeout):
        """The requests received so far once there are at least n (None on timeout)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return list(self.requests)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in _serve
        except OSError:
            pass
        self.sock.close()
        for c in self.held:
            c.close()
        self.held = []
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
