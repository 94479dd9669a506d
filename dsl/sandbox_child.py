"""What runs beside the code under test, inside the sandbox: the test driver and its audit hook.

Standard library only; imported by `sandbox_driver.py` (the fork server) inside the sandbox, and
by `sandbox.py` outside it for `parse_records`. Never imports the `dsl` package.

Why a pass cannot be forged (the threat model; RL will probe every hole):
* A pass is never read from the exit status or the output: only from records carrying a 128-bit
  nonce, written to a channel of their own. `sys.exit(0)`, `os._exit(0)` or printing "OK" leave
  records missing, and the caller (which counts the tests itself from the test source) fails the
  run. A record with the wrong nonce is ignored.
* The nonce lives only in locals of `run_child` and its closures. To read it, code needs a frame
  or an object walk; an audit hook (PEP 578; it cannot be removed) denies `sys._getframe`,
  traceback/generator/coroutine frames, `sys.settrace`/`setprofile`, `gc` object walks, `ctypes`,
  code-object construction, `/proc`, `/dev` and `/sys`. The code runs in a *non-main thread*, so it
  cannot install signal handlers, which CPython would call with the driver's frame.
* No process escapes: `os.fork`, `exec`, `posix_spawn`, `system`, `subprocess` and signals to
  other processes are denied; `_posixsubprocess` (unaudited) and the pidfd calls are removed. Under
  bubblewrap as root the run also has a uid of its own, different from the fork server's.
* The driver never calls what the code could have replaced: builtins and `os` functions it needs
  are bound to locals first (this module's globals are reachable with `import`); `assert` raises
  the real `AssertionError` whatever `builtins.AssertionError` is. Before every step the driver
  restores the builtins, the modules that were loaded before the code ran, and every name the
  tests' own top level bound (helpers, fixtures, `test*` functions), so code cannot rig a later
  test. Within one step the code and the test share a process; tampering there (or an object whose
  `__eq__` is always true) is reward hacking for the RL audit, not something a sandbox can see.
* User code is compiled with its line numbers shifted by `CODE_LINE_OFFSET`, so a traceback's
  `tb_lineno` says which user line raised without the driver touching a frame.
"""
import ast
import builtins
import json
import json.encoder
import os
import resource
import sys
import _thread

CODE_LINE_OFFSET = 1_000_000  # user-code line n is compiled as line n + offset
TEST_LINE_OFFSET = 2_000_000
TEXT_BUDGET = 300  # characters of an exception message or repr kept per record
EQ_TAG = "\x00coedit-eq"  # marks the message of a rewritten `assert a == b` in a test function
THREAD_STACK = 64 << 20  # the code runs in a thread; give deep recursion the room a main thread has

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
_BLOCKED_IMPORTS = frozenset({"ctypes", "_ctypes", "_testcapi", "_testinternalcapi", "cffi",
                              "_posixsubprocess", "subprocess", "multiprocessing", "_multiprocessing"})
_BLOCKED_DIRS = frozenset({"proc", "sys", "dev"})  # any path component naming them
_REMOVED_CALLS = (("os", "pidfd_open"), ("posix", "pidfd_open"), ("signal", "pidfd_send_signal"),
                  ("_signal", "pidfd_send_signal"))


def _install_audit_hook():
    """Deny what would let code find the nonce, start processes or escape; see the docstring."""
    blocked, prefixes, frame_attrs = _BLOCKED_EVENTS, _BLOCKED_PREFIXES, _FRAME_ATTRS
    blocked_imports, blocked_dirs = _BLOCKED_IMPORTS, _BLOCKED_DIRS
    fspath, type_, bytes_, int_, isinstance_ = os.fspath, type, bytes, int, isinstance
    startswith, partition, split = str.startswith, str.partition, str.split
    as_str, decode, disjoint = str.__str__, bytes.decode, frozenset.isdisjoint
    PermissionError_, BaseException_, frozenset_ = PermissionError, BaseException, frozenset

    def hook(event, args):
        if event in blocked or startswith(event, prefixes):
            raise PermissionError_(f"sandbox: {event} is not allowed")
        if event == "object.__getattr__" and args[1] in frame_attrs:
            raise PermissionError_(f"sandbox: reading {args[1]} is not allowed")
        if event == "object.__setattr__" and args[1] in ("__code__", "__globals__", "__closure__"):
            raise PermissionError_(f"sandbox: setting {args[1]} is not allowed")
        if event == "import" and partition(as_str(args[0]), ".")[0] in blocked_imports:
            raise PermissionError_(f"sandbox: import of {args[0]} is not allowed")
        if event == "open" and type_(args[0]) is not int_:
            try:  # judge an exact str: a str subclass could lie about its contents
                path = fspath(args[0])
                path = decode(path, "utf-8", "replace") if isinstance_(path, bytes_) else as_str(path)
                ok = disjoint(blocked_dirs, frozenset_(split(path, "/")))
            except BaseException_:
                ok = False
            if not ok:
                raise PermissionError_("sandbox: opening that path is not allowed")

    sys.addaudithook(hook)


def _shift(tree, offset):
    for node in ast.walk(tree):
        for attr in ("lineno", "end_lineno"):
            if getattr(node, attr, None) is not None:
                setattr(node, attr, getattr(node, attr) + offset)
    return tree


def is_eq_compare(expr):
    """`a == b` (one `==`, nothing chained): the assert whose failure can say Got/Expected."""
    return isinstance(expr, ast.Compare) and len(expr.ops) == 1 and isinstance(expr.ops[0], ast.Eq)


class _ShowBothSides(ast.NodeTransformer):
    """`assert a == b` in a test function becomes `assert (g := a) == (e := b), (EQ_TAG, g, e)`, so a
    failure can say what it got and expected (as top-level asserts do) without evaluating the sides
    twice or touching a frame. A forged tag changes only the feedback text, never pass or fail."""

    def visit_Assert(self, node):
        t = node.test
        if node.msg is not None or not is_eq_compare(t):
            return node
        got, expected = ast.Name("_coedit_got", ast.Store()), ast.Name("_coedit_expected", ast.Store())
        test = ast.Compare(ast.NamedExpr(got, t.left), [ast.Eq()], [ast.NamedExpr(expected, t.comparators[0])])
        msg = ast.Tuple([ast.Constant(EQ_TAG), ast.Name("_coedit_got", ast.Load()),
                         ast.Name("_coedit_expected", ast.Load())], ast.Load())
        # the new nodes take the assert's own line (fix_missing_locations copies it down); the
        # original sides keep theirs
        return ast.fix_missing_locations(ast.copy_location(ast.Assert(test, msg), node))


def _compile_plan(req):
    """(step, code, code) per plan step, compiled with test line numbers shifted."""
    out = []
    for step in req["plan"]:
        pad = "\n" * (step["line"] - 1)  # keep the test source's own line numbers

        def comp(src, mode="exec", rewrite=False):
            tree = ast.parse(pad + src, "<tests>", mode)
            if rewrite:
                try:
                    return compile(_shift(_ShowBothSides().visit(tree), TEST_LINE_OFFSET), "<tests>", mode)
                except SyntaxError:  # a rewrite the compiler refuses: the test as written, without Got/Expected
                    tree = ast.parse(pad + src, "<tests>", mode)
            return compile(_shift(tree, TEST_LINE_OFFSET), "<tests>", mode)
        if step["kind"] == "assert_eq":
            out.append((step, comp(step["left"], "eval"), comp(step["right"], "eval")))
        elif step["kind"] == "call":
            out.append((step, None, None))
        else:
            out.append((step, comp(step["src"], rewrite=bool(step.get("defines"))), None))
    return out


def run_child(req, results_fd, nonce, done_fd=-1):
    """Run `req['code']` then its test plan (see `prepare_child`); never returns."""
    prepare_child(results_fd, nonce, done_fd)(req)


_WARM_UP = {"code": "import re\ndef f(x):\n    return [x + 1 for _ in range(2)]\n", "plan": [
    {"kind": "assert_eq", "line": 1, "left": "(f(1))", "right": "([2, 2])"},
    {"kind": "setup", "line": 2, "src": "def test_f():\n    assert f(1) == [2, 2], 'msg'\n"}]}


def prepare_child(results_fd, nonce, done_fd=-1):
    """Everything a run needs that does not depend on its request, done ahead of time in a freshly
    forked child (each first write to a page after fork costs a copy; paying it before the request
    arrives keeps it off the run's latency). Returns `run(req)`, which runs `req['code']` then its
    test plan, writing nonce-tagged records to `results_fd`, and never returns: it ends with
    os._exit so no user finalizer or atexit hook runs after the last record.

    Every name used once user code has started is a local bound here first.
    """
    write, exit_, repr_, type_, len_, isinstance_ = os.write, os._exit, repr, type, len, isinstance
    getattr_, str_, int_, range_, exec_, eval_, tuple_ = getattr, str, int, range, exec, eval, tuple
    eq_tag = EQ_TAG
    BaseException_, AssertionError_ = BaseException, AssertionError
    encode, decode, dict_get, dict_items = str.encode, bytes.decode, dict.get, dict.items
    dict_clear, dict_update, dict_copy, list_append = dict.clear, dict.update, dict.copy, list.append
    type_name = type.__dict__["__name__"].__get__
    exc_info, sys_ = sys.exc_info, sys
    code_offset, test_offset = CODE_LINE_OFFSET, TEST_LINE_OFFSET
    compile_code, compile_plan, shift, parse = compile, _compile_plan, _shift, ast.parse
    # records are JSON arrays of str and int, built only from C functions bound here: user code
    # can patch the json module, but not these
    quote, int_repr, join = json.encoder.encode_basestring_ascii, int.__repr__, str.join
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

    def emit(*fields):
        parts = [quote(f) if type_(f) is str_ else int_repr(f) for f in fields]
        write(results_fd, tag + encode("[" + join(",", parts) + "]\n", "ascii"))

    def finish():
        # user prints sit in sys.stdout's buffer and os._exit does not flush; the streams may be
        # user objects by now, which only affects what output is shown
        for stream in ("stdout", "stderr"):
            try:
                getattr_(sys_, stream).flush()
            except BaseException_:
                pass
        emit("end")
        if done_fd >= 0:
            write(done_fd, b".")

    def failure(e):
        """(status, exception type, message, user-code line or 0, tests line or 0, got, expected)
        of the exception being handled; the lines are the innermost frames of each source."""
        user_line, test_line, tb = 0, 0, exc_info()[2]
        while tb is not None:
            if code_offset < tb.tb_lineno < test_offset:
                user_line = tb.tb_lineno - code_offset
            elif tb.tb_lineno > test_offset:
                test_line = tb.tb_lineno - test_offset
            tb = tb.tb_next
        status = "fail" if isinstance_(e, AssertionError_) else "error"
        got = expected = ""
        try:
            args = e.args
            if (status == "fail" and len_(args) == 1 and type_(args[0]) is tuple_ and len_(args[0]) == 3
                    and type_(args[0][0]) is str_ and args[0][0] == eq_tag):
                msg, got, expected = "", text(shown(args[0][1])), text(shown(args[0][2]))
            else:
                msg = "" if not args else text(args[0] if len_(args) == 1 else args)
        except BaseException_:
            msg = "<unprintable>"
        return status, text(type_name(type_(e))), msg, user_line, test_line, got, expected

    def compile_request(req):
        return (compile_code(shift(parse(req["code"], "<code>"), code_offset), "<code>", "exec"),
                compile_plan(req))

    compile_request(_WARM_UP)  # pre-copies the compiler's pages; compiles nothing of the user's
    for module, name in _REMOVED_CALLS:
        if hasattr(sys.modules.get(module), name):
            delattr(sys.modules[module], name)
    for name in _BLOCKED_IMPORTS:  # a loaded module would not raise the import event
        sys.modules.pop(name, None)
    # pristine copies, restored before every step (see the module docstring)
    real_builtins = builtins.__dict__
    pristine_builtins = dict_copy(real_builtins)
    own_builtins = dict_copy(real_builtins)  # what the code and tests see as __builtins__
    modules = sys.modules
    pristine_modules = dict_copy(modules)
    g = {"__name__": "__main__", "__builtins__": own_builtins}
    protected = {}  # names the tests' top level bound -> their values
    tests = {}  # test function name -> the function, captured right after its def ran

    def restore():
        dict_clear(own_builtins)
        dict_update(own_builtins, pristine_builtins)
        for key, value in dict_items(pristine_builtins):
            if dict_get(real_builtins, key) is not value:
                real_builtins[key] = value
        for key in [k for k in modules if k not in pristine_modules]:
            del modules[key]  # a later import loads the real module again
        for key, value in dict_items(pristine_modules):
            if dict_get(modules, key) is not value:
                modules[key] = value
        for key, value in dict_items(protected):
            if dict_get(g, key) is not value:
                g[key] = value

    def body(req):
        try:  # compile everything before any user code runs
            code_obj, steps = compile_request(req)
        except SyntaxError as e:
            emit("code", "syntax", "SyntaxError", text(e.msg or ""), int_(e.lineno or 0), int_(e.offset or 0))
            return
        except (ValueError, MemoryError, RecursionError) as e:  # NUL bytes, absurd nesting
            emit("code", "syntax", text(type_name(type_(e))), text(str_(e)), 0, 0)
            return
        try:
            exec_(code_obj, g)
        except BaseException_ as e:
            emit("code", *failure(e)[:4])
            return
        emit("code", "ok", "", "", 0)
        setup_failed = False
        for i in range_(len_(steps)):
            step, a, b = steps[i]
            kind = step["kind"]
            if kind == "setup" and setup_failed:
                continue  # like the script would, stop at the first failing top-level statement
            fn = dict_get(tests, dict_get(step, "name", ""))
            if kind == "call" and fn is None:
                emit("test", i, "error", "NameError", step["name"] + " is not defined", 0, "", "")
                continue
            restore()
            before = dict_copy(g) if kind == "setup" else None
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
            except BaseException_ as e:
                status, etype, msg, user_line, test_line, got2, expected2 = failure(e)
                got, expected = (got, expected) if got or expected else (got2, expected2)
                setup_failed = setup_failed or kind == "setup"
                emit("test" if kind != "setup" else "setup", i, status, etype, msg, user_line, got, expected, test_line)
                continue
            if before is not None:  # protect what the tests' top level just bound
                for key, value in dict_items(g):
                    if dict_get(before, key, before) is not value:
                        protected[key] = value
                for name in dict_get(step, "defines", ()):
                    tests[name] = dict_get(g, name)
            emit("test" if kind != "setup" else "setup", i, "pass", "", "", 0, "", "", 0)

    # The code runs in a thread of its own, started now and waiting for the request: CPython lets
    # only the main thread set signal handlers, and a handler would be handed the driver's frames.
    _install_audit_hook()
    request, start, done = [], _thread.allocate_lock(), _thread.allocate_lock()
    start.acquire()
    done.acquire()

    def worker():
        start.acquire()
        try:
            body(request[0])
            finish()
        except BaseException_:
            pass  # the driver itself failed (e.g. MemoryError): no end record, so the run fails
        finally:
            done.release()

    _thread.stack_size(THREAD_STACK)
    _thread.start_new_thread(worker, ())

    def run(req):
        list_append(request, req)
        start.release()
        try:
            done.acquire()
        finally:
            exit_(0)
    return run


def parse_records(data, nonce):
    """The well-formed records tagged with `nonce`, as tuples, in order; anything else is ignored."""
    tag, out = (nonce + " ").encode(), []
    for line in data.split(b"\n"):
        if not line.startswith(tag):
            continue
        try:
            rec = json.loads(line[len(tag):])
        except (ValueError, RecursionError):
            continue
        if isinstance(rec, list) and rec and isinstance(rec[0], str):
            out.append(tuple(rec))
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


def drop_privileges(uid, nproc):
    """As root: become an unprivileged uid, so RLIMIT_NPROC is enforced and the fork server is out
    of reach (a different uid cannot signal or trace it)."""
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if nproc:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
