"""The trusted side of the sandbox that runs *inside* it: a fork server and the per-run test driver.

Standard library only, started as a script (`python -I -S sandbox_driver.py --serve | --once`),
so nothing from the caller's environment or site-packages is imported. `sandbox.py` starts it
(normally under bubblewrap) and talks to it; this file never imports the `dsl` package.

`--exec --limits JSON -- ARGV`: drop privileges, apply the limits, exec ARGV (a general `Job`).

`--serve`: a warm fork server. It reads length-prefixed JSON requests on stdin and answers each on
stdout. Per request it forks a child (milliseconds; the interpreter is already up), which runs the
code and the test plan, and the server enforces the wall-clock limit, caps the output, and kills
the child's whole process group. `--once`: the same child logic in this process, for the
fresh-process fallback; the caller enforces time.

Why a pass cannot be forged (the threat model; RL will probe every hole):
* A pass is never read from the exit status or from stdout/stderr: only from records on a
  separate results pipe, each carrying a 128-bit nonce held in a local of `run_child` and never
  stored where user code can name it. `sys.exit(0)`, `os._exit(0)` or printing "OK" leave records
  missing, and the caller (which counts the tests itself from the test source) reports a failure.
* User code cannot reach the nonce: an audit hook (PEP 578, cannot be removed) blocks frame
  access (`sys._getframe`, traceback/generator frames, `sys.settrace`), `gc` object walks,
  `ctypes`, code-object construction, `/proc`, `/dev` and `/sys`, `chdir`, symlinks, signals to
  other processes, and process creation. The driver needs no frames itself: user code is compiled
  with its line numbers shifted by `CODE_LINE_OFFSET`, so a traceback's `tb_lineno` says which
  user line raised.
* The driver never calls anything user code can replace after user code has run: builtins and
  `os` functions it needs are bound to locals first; the `assert` statement raises the real
  `AssertionError` whatever `builtins.AssertionError` is; test functions are captured right after
  their `def` runs.
"""
import ast
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time

CODE_LINE_OFFSET = 1_000_000  # user-code line n is compiled as line n + offset
TEST_LINE_OFFSET = 2_000_000
RECORD_BUDGET = 1 << 20  # bytes of result records kept per run
TEXT_BUDGET = 300  # characters of an exception message or repr kept per record

_BLOCKED_EVENTS = frozenset({
    "sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace",
    "sys.setprofile", "sys.addaudithook", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "code.__new__", "function.__new__", "os.kill", "os.killpg",
    "signal.pthread_kill", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec",
    "os.system", "subprocess.Popen", "pty.spawn", "os.chdir", "os.chroot", "os.symlink",
    "os.link", "socket.__new__", "socket.connect", "socket.bind", "os.setuid", "os.setgid",
})
_BLOCKED_PREFIXES = ("ctypes.", "cffi.", "_winapi.", "winreg.")
_FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
_BLOCKED_IMPORTS = frozenset({"ctypes", "_ctypes", "_testcapi", "_testinternalcapi", "cffi"})
_BLOCKED_PATH_PARTS = ("proc", "/dev/", "/sys")


def _install_audit_hook():
    """Block what would let user code find the nonce or escape; see the module docstring."""
    blocked, prefixes, frame_attrs = _BLOCKED_EVENTS, _BLOCKED_PREFIXES, _FRAME_ATTRS
    blocked_imports, path_parts = _BLOCKED_IMPORTS, _BLOCKED_PATH_PARTS
    fspath, isinstance_, str_, bytes_, int_, any_ = os.fspath, isinstance, str, bytes, int, any
    startswith, PermissionError_, Exception_ = str.startswith, PermissionError, Exception

    def hook(event, args):
        if event in blocked or startswith(event, prefixes):
            raise PermissionError_(f"sandbox: {event} is not allowed")
        if event == "object.__getattr__" and args[1] in frame_attrs:
            raise PermissionError_(f"sandbox: reading {args[1]} is not allowed")
        if event == "object.__setattr__" and args[1] in ("__code__", "__globals__", "__closure__"):
            raise PermissionError_(f"sandbox: setting {args[1]} is not allowed")
        if event == "import" and args[0].partition(".")[0] in blocked_imports:
            raise PermissionError_(f"sandbox: import of {args[0]} is not allowed")
        if event == "open" and not isinstance_(args[0], int_):
            try:
                path = fspath(args[0])
                if isinstance_(path, bytes_):
                    path = path.decode("utf-8", "replace")
                ok = isinstance_(path, str_) and not any_(p in path for p in path_parts)
            except Exception_:
                ok = False
            if not ok or startswith(path, "/dev"):
                raise PermissionError_("sandbox: opening that path is not allowed")

    sys.addaudithook(hook)


def _shift(tree, offset):
    for node in ast.walk(tree):
        for attr in ("lineno", "end_lineno"):
            if getattr(node, attr, None) is not None:
                setattr(node, attr, getattr(node, attr) + offset)
    return tree


def _compile_plan(req):
    """(step, code, code) per plan step, compiled with test line numbers shifted."""
    out = []
    for step in req["plan"]:
        pad = "\n" * (step["line"] - 1)  # keep the test source's own line numbers

        def comp(src, mode="exec"):
            return compile(_shift(ast.parse(pad + src, "<tests>", mode), TEST_LINE_OFFSET), "<tests>", mode)
        if step["kind"] == "assert_eq":
            out.append((step, comp(step["left"], "eval"), comp(step["right"], "eval")))
        elif step["kind"] == "call":
            out.append((step, None, None))
        else:
            out.append((step, comp(step["src"]), None))
    return out


def run_child(req, results_fd, nonce, done_fd=-1):
    """Run `req['code']` then its test plan, writing nonce-tagged records to `results_fd`.

    Never returns: ends with os._exit so no user finalizer or atexit hook runs after the last
    record. This runs as `__main__`, whose globals user code can reach (`import __main__`), so
    every name used once user code has started is a local bound here first.
    """
    write, exit_, repr_, type_, len_, isinstance_ = os.write, os._exit, repr, type, len, isinstance
    getattr_ = getattr
    str_, int_, range_, exec_, eval_ = str, int, range, exec, eval
    BaseException_, AssertionError_, NameError_ = BaseException, AssertionError, NameError
    encode, decode, dict_get = str.encode, bytes.decode, dict.get
    type_name = type.__dict__["__name__"].__get__
    exc_info, sys_ = sys.exc_info, sys
    code_offset, test_offset = CODE_LINE_OFFSET, TEST_LINE_OFFSET
    tag = nonce.encode() + b" "

    def text(value, limit=TEXT_BUDGET):
        # an exact, bounded str; repr() of a user object may run user code (still under the hook)
        try:
            s = value if isinstance_(value, str_) else repr_(value)
            s = decode(encode(s, "utf-8", "replace"), "utf-8")
        except BaseException_:
            s = "<unprintable>"
        return s if len_(s) <= limit else s[: limit - 1] + "\u2026"

    def shown(value):
        try:
            return repr_(value)
        except BaseException_:
            return "<unprintable>"

    def flush_output():
        # user prints sit in sys.stdout's buffer, and os._exit does not flush; the streams may be
        # user objects by now, which is fine: this only affects what output is shown
        for stream in ("stdout", "stderr"):
            try:
                getattr_(sys_, stream).flush()
            except BaseException_:
                pass

    def emit(*fields):
        write(results_fd, tag + encode(repr_(fields), "utf-8", "replace") + b"\n")

    def failure(e):
        """(status, exception type, message, user-code line or 0) of the exception being handled."""
        user_line, tb = 0, exc_info()[2]
        while tb is not None:
            if code_offset < tb.tb_lineno < test_offset:
                user_line = tb.tb_lineno - code_offset
            tb = tb.tb_next
        status = "fail" if isinstance_(e, AssertionError_) else "error"
        try:
            args = e.args
            msg = "" if not args else text(args[0] if len_(args) == 1 else args)
        except BaseException_:
            msg = "<unprintable>"
        return status, text(type_name(type_(e))), msg, user_line

    try:  # compile everything before any user code runs
        code_obj = compile(_shift(ast.parse(req["code"], "<code>"), code_offset), "<code>", "exec")
    except SyntaxError as e:
        emit("code", "syntax", "SyntaxError", text(e.msg or ""), int_(e.lineno or 0), int_(e.offset or 0))
        emit("end")
        exit_(0)  # no done byte: the server sees the exit
    except (ValueError, MemoryError, RecursionError) as e:  # NUL bytes, absurd nesting
        emit("code", "syntax", text(type_name(type_(e))), text(str_(e)), 0, 0)
        emit("end")
        exit_(0)
    steps = _compile_plan(req)
    count = len_(steps)
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    tests = {}  # test function name -> the function, captured right after its def ran
    _install_audit_hook()
    try:
        exec_(code_obj, g)
    except BaseException_ as e:
        emit("code", *failure(e))
        emit("end")
        exit_(0)
    emit("code", "ok", "", "", 0)
    setup_failed = False
    for i in range_(count):
        step, a, b = steps[i]
        kind = step["kind"]
        where = "setup" if kind == "setup" else "test"
        if kind == "setup" and setup_failed:
            continue  # like the script would, stop at the first failing top-level statement
        fn = dict_get(tests, step.get("name", ""))
        if kind == "call" and fn is None:
            emit("test", i, "error", "NameError", step["name"] + " is not defined", 0, "", "")
            continue
        emit("start", i)
        got = expected = ""
        try:
            if kind == "assert_eq":
                left = eval_(a, g)
                right = eval_(b, g)
                if not (left == right):
                    got, expected = text(shown(left)), text(shown(right))
                    raise AssertionError_(got + " != " + expected)
            elif kind == "call":
                fn()
            else:
                exec_(a, g)
                for name in step.get("defines", ()):
                    tests[name] = dict_get(g, name)
        except BaseException_ as e:
            status, etype, msg, user_line = failure(e)
            setup_failed = setup_failed or kind == "setup"
            emit(where, i, status, etype, msg, user_line, got, expected)
            continue
        emit(where, i, "pass", "", "", 0, "", "")
    flush_output()
    emit("end")
    if done_fd >= 0:
        write(done_fd, b".")
    exit_(0)


def parse_records(data, nonce):
    """The well-formed records tagged with `nonce`, in order; anything else is ignored."""
    tag, out = (nonce + " ").encode(), []
    for line in data.split(b"\n"):
        if not line.startswith(tag):
            continue
        try:
            rec = ast.literal_eval(line[len(tag):].decode("utf-8", "replace"))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(rec, tuple) and rec and isinstance(rec[0], str):
            out.append(rec)
    return out


def set_limits(limits):
    """rlimits for one run. NPROC is per-uid: only meaningful where the sandbox has its own uid."""
    cpu = max(1, int(limits["cpu_s"]))
    mem = int(limits["mem_mb"]) << 20
    for res, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)), (resource.RLIMIT_AS, (mem, mem)),
                       (resource.RLIMIT_FSIZE, (16 << 20, 16 << 20)), (resource.RLIMIT_CORE, (0, 0)),
                       (resource.RLIMIT_NOFILE, (64, 64))):
        try:
            resource.setrlimit(res, value)
        except (ValueError, OSError):
            pass


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

    def __init__(self):
        self.nonce = os.urandom(16).hex()
        self.workdir = tempfile.mkdtemp(prefix="run-")
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
                req = _read_frame(req_r)
                if req is not None:
                    os.close(req_r)
                    set_limits(req["limits"])
                    run_child(req, self.res_fd, self.nonce, done_w)
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
        """Kill what the run left (its whole process group), reap it, remove its directory."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
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
    end_mark = (nonce + " ('end',)\n").encode()
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


def drop_privileges(uid, nproc):
    """As root inside the sandbox: become an unprivileged uid, so RLIMIT_NPROC is enforced."""
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if nproc:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


# Imported once by the fork server so that each run finds them loaded: the modules MBPP-style code
# imports most. The same stdlib modules the code would import itself; runs stay independent
# because every run is a forked copy.
PRELOAD = ("re", "math", "cmath", "collections", "heapq", "itertools", "functools", "operator",
           "bisect", "copy", "string", "array", "datetime", "typing", "statistics", "fractions",
           "decimal", "random")


def main(argv):
    own = argv[:argv.index("--")] if "--" in argv else argv  # options before a job's own argv
    uid = int(own[own.index("--uid") + 1]) if "--uid" in own else None
    nproc = int(own[own.index("--nproc") + 1]) if "--nproc" in own else 0
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
    spare = Spare()
    write_frame(proto_out, {"ready": True, "uid": os.getuid()})
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
        spare = Spare()


if __name__ == "__main__":
    main(sys.argv[1:])
