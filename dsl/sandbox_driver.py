"""The fork server: the trusted process that starts and watches each run, inside the sandbox.

Standard library only, started as a script (`python -I -S sandbox_driver.py MODE`), so nothing
from the caller's environment or site-packages is imported; `sandbox.py` starts it (normally
under bubblewrap) and talks to it. What runs beside the code under test is `sandbox_child.py`.

Modes:
* `--serve`: a warm fork server. It reads length-prefixed JSON requests on stdin and answers each
  on stdout. A child is forked ahead of time (`Spare`) and set up while the caller is busy; a
  request is handed to it, and the server enforces the wall clock, caps the output, and answers as
  soon as the child's last record arrives. Then it kills what the run left and forks the next.
* `--once`: the child logic in this very process (the fresh-process fallback); the caller enforces
  time and reads the records from `--results-fd`.
* `--exec --limits JSON -- ARGV`: drop privileges, apply the limits, exec ARGV (a general `Job`).

With `--uid U` (given when we start as root under bubblewrap) every run drops to that uid; the
server itself stays root inside the sandbox (holding only the capabilities to switch uids), so a
run can neither signal nor trace it. With `--pidns` (we own the pid namespace and /tmp) the server
also kills every leftover process and empties /tmp between runs.
"""
import json
import os
import select
import shutil
import signal
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script dir out
from sandbox_child import drop_privileges, parse_records, prepare_child, run_child, set_limits  # noqa: E402

RECORD_BUDGET = 1 << 20  # bytes of result records kept per run


def _read_frame(fd, raw=False):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack(">I", head)[0])
    if body is None:
        return None
    return (json.loads(body), body) if raw else json.loads(body)


def _read_exact(fd, n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def write_frame(fd, obj):
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    view = memoryview(struct.pack(">I", len(body)) + body)
    while view:
        view = view[os.write(fd, view):]


class Spare:
    """A child forked and set up ahead of time, blocked until its request arrives.

    Forking costs about a millisecond; doing it while the caller is busy with the previous
    result keeps it off the latency of a run.
    """

    def __init__(self, uid, nproc, own_namespace):
        self.own_namespace = own_namespace
        self.nonce = os.urandom(16).hex()
        self.workdir = tempfile.mkdtemp(prefix="run-")
        os.chmod(self.workdir, 0o777)  # the run may have a uid of its own
        req_r, self.req_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.done_r, done_w = os.pipe()
        # records go to an unlinked file (no wake-up per record, no pipe-buffer limit); the child
        # writes one byte to `done` after the last record
        self.res_fd, path = tempfile.mkstemp(prefix="records-")
        os.unlink(path)
        self.pid = os.fork()
        if self.pid == 0:  # child
            try:
                os.setpgid(0, 0)
                os.chdir(self.workdir)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                os.dup2(out_w, 1)
                os.dup2(out_w, 2)
                keep = sorted((req_r, self.res_fd, done_w))
                os.closerange(3, keep[0])
                os.closerange(keep[0] + 1, keep[1])
                os.closerange(keep[1] + 1, keep[2])
                os.closerange(keep[2] + 1, 1 << 16)
                drop_privileges(uid, nproc)
                run = prepare_child(self.res_fd, self.nonce, done_w)
                req = _read_frame(req_r)
                if req is not None:
                    os.close(req_r)
                    set_limits(req["limits"])
                    run(req)
            finally:
                os._exit(70)
        for fd in (req_r, out_w, done_w):
            os.close(fd)

    def run(self, req, body):
        """Hand the request (and its encoded `body`) over and collect the results; the child is
        reaped by `finish`."""
        start = time.monotonic()
        write_frame(self.req_w, body)
        os.close(self.req_w)
        self.req_w = -1
        return collect(self.pid, self.out_r, self.done_r, self.res_fd, start, req["limits"], self.nonce)

    def finish(self):
        """Kill what the run left, reap it, remove its files: the next run starts clean."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.own_namespace:  # only here: in a shared namespace these would hit the host
            try:
                os.kill(-1, signal.SIGKILL)  # everything but namespace init and us
            except (ProcessLookupError, PermissionError):
                pass
            while True:  # reap what was ours
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0:
                        break
                except ChildProcessError:
                    break
            empty_dir("/tmp")
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        for fd in (self.out_r, self.done_r, self.res_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)

    def discard(self):
        if self.req_w >= 0:
            os.close(self.req_w)  # the child reads EOF and exits
        self.finish()


def collect(pid, out_r, done_r, res_fd, start, limits, nonce):
    """Wait for the driver's `end` record, the child's exit, or the wall clock, capturing output.
    Answering at `end` keeps process teardown off the caller's latency."""
    deadline = start + float(limits["wall_s"])
    out, dropped, timed_out = bytearray(), 0, False
    end_mark = (nonce + ' ["end"]\n').encode()
    open_fds = [out_r, done_r]

    def ended():
        size = os.fstat(res_fd).st_size
        return size >= len(end_mark) and os.pread(res_fd, len(end_mark), size - len(end_mark)) == end_mark

    while done_r in open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(open_fds, [], [], left)
        if out_r in ready:
            chunk = os.read(out_r, 65536)
            if not chunk:
                open_fds.remove(out_r)
            keep = max(0, int(limits["out_bytes"]) - len(out))
            out += chunk[:keep]
            dropped += len(chunk) - min(len(chunk), keep)
        if done_r in ready:
            if not os.read(done_r, 64):
                open_fds.remove(done_r)  # the child is gone
            elif ended():  # user code may write to `done` early: trust only the end record
                break
    while out_r in open_fds and select.select([out_r], [], [], 0)[0]:  # printed before the end
        chunk = os.read(out_r, 65536)
        if not chunk:
            break
        keep = max(0, int(limits["out_bytes"]) - len(out))
        out += chunk[:keep]
        dropped += len(chunk) - min(len(chunk), keep)
    exit_code = None
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if done_r not in open_fds or timed_out:  # it exited (or was killed): report how
        _, status = os.waitpid(pid, 0)
        exit_code = os.waitstatus_to_exitcode(status)
    size = min(os.fstat(res_fd).st_size, RECORD_BUDGET)
    return {
        "records": parse_records(os.pread(res_fd, size, 0), nonce),
        "output": out.decode("utf-8", "replace"),
        "output_dropped": dropped,
        "timed_out": timed_out,
        "exit_code": exit_code,
        "wall_s": time.monotonic() - start,
    }


# Imported once by the fork server so that each run finds them loaded: the modules MBPP-style code
# imports most. The same stdlib modules the code would import itself; runs stay independent
# because every run is a forked copy.
PRELOAD = ("re", "math", "cmath", "collections", "heapq", "itertools", "functools", "operator",
           "bisect", "copy", "string", "array", "datetime", "typing", "statistics", "fractions",
           "decimal", "random")


def empty_dir(root):
    """Delete what `root` holds, except mount points and what lies under them: the read-only paths
    that bubblewrap binds in when the interpreter or the checkout lives under /tmp. rmtree walked
    all of those (a whole virtualenv) after every run, deleting nothing: 30x slower runs. Iterative,
    so that a run's deeply nested directories cannot exhaust the recursion limit."""
    stack = [(os.path.join(root, name), False) for name in _names(root)]
    while stack:
        path, emptied = stack.pop()
        if emptied:
            try:
                os.rmdir(path)
            except OSError:
                pass
        elif os.path.isdir(path) and not os.path.islink(path):
            if not os.path.ismount(path):
                stack.append((path, True))
                stack.extend((os.path.join(path, name), False) for name in _names(path))
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def _names(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _owns_namespace():
    """True only inside a pid namespace that bubblewrap made for us (its init is pid 1)."""
    try:
        with open("/proc/1/comm") as f:
            return f.read().strip() == "bwrap" and os.getpid() < 100
    except OSError:
        return False


def main(argv):
    own = argv[:argv.index("--")] if "--" in argv else argv  # options before a job's own argv
    uid = int(own[own.index("--uid") + 1]) if "--uid" in own else None
    nproc = int(own[own.index("--nproc") + 1]) if "--nproc" in own else 0
    if "--serve" not in own:
        drop_privileges(uid, nproc)
    if "--exec" in own:  # a general job (e.g. pytest on a workspace): same uid and limits, then exec
        command = argv[argv.index("--") + 1:]
        set_limits(json.loads(argv[argv.index("--limits") + 1]))
        os.execv(command[0], command)
    if "--once" in argv:
        req = json.loads(sys.stdin.buffer.read())
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        set_limits(req["limits"])
        run_child(req, int(argv[argv.index("--results-fd") + 1]), req["nonce"])
    for name in PRELOAD:
        __import__(name)
    # --serve: the protocol moves to private fds; children inherit neither
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    for fd in (proto_in, proto_out):
        os.set_inheritable(fd, False)
    own_namespace = "--pidns" in own and _owns_namespace()
    spare = Spare(uid, nproc, own_namespace)
    write_frame(proto_out, {"ready": True, "uid": os.getuid(), "own_namespace": own_namespace})
    while True:
        frame = _read_frame(proto_in, raw=True)
        if frame is None:
            spare.discard()
            return
        try:
            resp = spare.run(*frame)
        except Exception as e:  # keep serving; the caller sees an infrastructure error
            resp = {"error": f"{type(e).__name__}: {e}"}
        write_frame(proto_out, resp)
        spare.finish()  # while the caller reads the response
        spare = Spare(uid, nproc, own_namespace)


if __name__ == "__main__":
    main(sys.argv[1:])
