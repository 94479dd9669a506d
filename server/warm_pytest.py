"""The warm workspace runner: one pytest session kept alive for a Fix, a fresh fork per check.

Runs *inside* the `dsl` sandbox under the workspace's own interpreter, as a script (standard
library and pytest only; nothing of coedit is importable there). `server/warm_runner.py` starts it.

    python warm_pytest.py FILE QUALNAME FIRST_LINE -- PYTEST_ARGS...

pytest starts once: plugins, conftest, collection of the selected node ids (assertion rewriting
of the test files included) and the imports of the project. Then, in place of pytest's run loop,
it serves checks, one JSON line in (`{"code": <the edited function, as in the file>, "def_line":
N, "wall_s": S, "coverage": bool}`) and one JSON line out, over descriptors saved before pytest
started (pytest redirects 0, 1 and 2). Each check forks: the child gives the function objects of
the target (found once, after collection) the edited code, runs the collected items through
pytest's own protocol, and lets pytest's session end write its junit report, exactly as the fresh
run does; the parent waits for it (killing it past its wall limit) and answers with the report,
the output and, when asked, the lines of the target each test ran (for fault localization).

Why patch `__code__` rather than re-import: every reference to the function (a package's
re-export, `from mod import f` in a test, a decorator's closure) is the same object, so all of
them see the edit, and nothing else in the session changes. What that cannot replicate (a
docstring change for doctests, a new closure) the caller sends to a fresh pytest instead.
"""
import gc
import json
import linecache
import os
import resource
import signal
import sys
import time
import types

PATCH_FAILED = 97  # the child's exit status when the edit cannot be laid onto the function


def _candidates(path, name, first_line):
    """The loaded function objects of the target: its name, in this file, starting there."""
    real = os.path.realpath(path)
    found = []
    for obj in gc.get_objects():
        if type(obj) is types.FunctionType:
            code = obj.__code__
            if code.co_name == name and code.co_firstlineno == first_line and os.path.realpath(code.co_filename) == real:
                found.append(obj)
    return found


def _real_path(path):
    import pathlib
    return pathlib.Path(os.path.realpath(path))


def _shared_astcache(paths):
    """One parse of each test file for every failure of every check: pytest parses a file per
    failure to show its statement (0.3 s for more-itertools' test file, per failing test). This is
    pytest's own cache (its formatter's `astcache`), shared; where pytest has none, no cache."""
    import ast
    try:
        from _pytest._code import code as pytest_code
        from _pytest._code import source as pytest_source
    except ImportError:
        return None
    formatter = getattr(pytest_code, "ExceptionInfoFormatter", None) or getattr(pytest_code, "FormattedExcinfo", None)
    if formatter is None or "astcache" not in getattr(formatter, "__dataclass_fields__", {}):
        return None
    init = formatter.__init__
    linenos = getattr(pytest_source, "_statement_linenos", None)  # memoized on the tree (pytest >= 8.4)
    shared = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                shared[path] = ast.parse(f.read())
        except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
            continue
        if linenos is not None:
            linenos(shared[path])

    def shared_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.astcache = shared
    formatter.__init__ = shared_init
    return shared


def _compiled(req, path, qualname, module_globals):
    """The edited function as a new function object, compiled where it lives: inside its class
    (so private names mangle and `super()` finds its cell as in the file) at its file lines.
    The decorators stay as they are (the edit is the def and its body), so none is applied."""
    import ast
    import textwrap
    parts = qualname.split(".")
    code = textwrap.dedent(req["code"])
    if len(parts) > 1:
        code = f"class {parts[-2]}:\n" + textwrap.indent(code, "    ")
    tree = ast.parse(code)
    ast.increment_lineno(tree, req["def_line"] - (2 if len(parts) > 1 else 1))
    scope = {}
    exec(compile(tree, path, "exec"), module_globals, scope)
    return scope[parts[-2]].__dict__[parts[-1]] if len(parts) > 1 else scope[parts[-1]]


class Warm:
    def __init__(self, path, qualname, first_line, proto_in, proto_out, workdir):
        self.path, self.qualname, self.first_line = path, qualname, first_line
        self.proto_in, self.proto_out, self.workdir = proto_in, proto_out, workdir

    def send(self, obj):
        self.proto_out.write((json.dumps(obj) + "\n").encode())
        self.proto_out.flush()

    def pytest_runtestloop(self, session):
        name = self.qualname.rsplit(".", 1)[-1]
        found = _candidates(self.path, name, self.first_line)
        with open(self.path, encoding="utf-8") as f:
            self.lines = f.read().splitlines(keepends=True)  # the document as the Fix started
        paths = {getattr(item, "path", None) for item in session.items} - {None}
        self.astcache = _shared_astcache({p for p in paths if _real_path(p) != _real_path(self.path)})
        module = sys.modules.get(found[0].__module__) if found else None
        self.send({"ready": True, "items": [item.nodeid for item in session.items], "found": len(found),
                   "collect_errors": session.testsfailed})
        for line in self.proto_in:
            req = json.loads(line)
            self.send(self.check(session, req, found, module.__dict__ if module else {}))
        return True

    def check(self, session, req, found, module_globals):
        for name in ("report.xml", "coverage.json", "patch.txt"):
            try:
                os.unlink(os.path.join(self.workdir, name))
            except OSError:
                pass
        sys.stdout.flush()
        sys.stderr.flush()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                self.child(session, req, found, module_globals)
            finally:
                os._exit(PATCH_FAILED)
        try:
            os.setpgid(pid, pid)  # as the child does first: either way its group exists before any kill
        except OSError:
            pass
        deadline, timed_out = start + req["wall_s"], False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                timed_out = True
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.002)
        try:
            os.killpg(pid, signal.SIGKILL)  # whatever it left behind
        except OSError:
            pass
        code = None if timed_out else (os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status))
        return {"returncode": code, "timed_out": timed_out, "wall_s": time.monotonic() - start,
                "report": self.read("report.xml"), "output": self.read("out.txt", 65536),
                "coverage": json.loads(self.read("coverage.json") or "null"),
                "patch_failed": self.read("patch.txt") if code == PATCH_FAILED else None}

    def read(self, name, tail=None):
        try:
            with open(os.path.join(self.workdir, name), "rb") as f:
                data = f.read()
        except OSError:
            return None
        return (data[-tail:] if tail else data).decode("utf-8", "replace")

    def child(self, session, req, found, module_globals):
        os.setpgid(0, 0)
        self.proto_in.close()
        self.proto_out.close()
        os.ftruncate(1, 0)  # out.txt (opened for appending): this check's output only
        cpu = int(req["wall_s"]) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        try:
            filename = found[0].__code__.co_filename
            # tracebacks read the function's lines through linecache: show them the edited file
            text = self.lines[: req["def_line"] - 1] + [req["code"]] + self.lines[req["end_line"]:]
            lines = "".join(text).splitlines(keepends=True)
            linecache.cache[filename] = (len("".join(lines)), None, lines, filename)
            for key in [k for k in (self.astcache or {}) if _real_path(k) == _real_path(filename)]:
                del self.astcache[key]  # its statements are the edited file's now
            new = _compiled(req, filename, self.qualname, module_globals)
            for f in found:
                f.__code__ = new.__code__  # ValueError when the closures differ: a fresh run decides
                # the signature is the same (the caller sends other edits to a fresh pytest): the
                # defaults stay the objects the module's import made
        except Exception as e:
            with open(os.path.join(self.workdir, "patch.txt"), "w") as out:
                out.write(f"{type(e).__name__}: {e}")
            os._exit(PATCH_FAILED)
        ran = {}
        if req.get("coverage"):
            codes = {id(new.__code__)}
            sink = [set()]

            def local(frame, event, arg):
                if event == "line":
                    sink[0].add(frame.f_lineno)
                return local

            def call(frame, event, arg):
                return local if id(frame.f_code) in codes else None

            def traced(run):
                def runtest():  # the test's call only: tracing pytest's own machinery costs seconds
                    sys.settrace(call)
                    try:
                        run()
                    finally:
                        sys.settrace(None)
                return runtest
        items = session.items
        for i, item in enumerate(items):
            if req.get("coverage"):
                sink[0] = ran.setdefault(item.nodeid, set())
                item.runtest = traced(item.runtest)
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=items[i + 1] if i + 1 < len(items) else None)
        status = 1 if session.testsfailed else 0
        # Only the junit report's own session end: the whole hook would also run every plugin's
        # terminal summary, and one (hypothesis') imports its package there, 1 s per check.
        for plugin in session.config.pluginmanager.get_plugins():
            if type(plugin).__name__ == "LogXML":
                plugin.pytest_sessionfinish()
        if req.get("coverage"):
            with open(os.path.join(self.workdir, "coverage.json"), "w") as out:
                json.dump({k: sorted(v) for k, v in ran.items()}, out)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def main(argv):
    path, qualname, first_line = argv[0], argv[1], int(argv[2])
    args = argv[argv.index("--") + 1:]
    workdir = os.path.dirname(os.path.abspath(__file__))
    proto_in, proto_out = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "wb")
    for f in (proto_in, proto_out):
        os.set_inheritable(f.fileno(), False)
    out = os.open(os.path.join(workdir, "out.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    sys.path[0] = os.getcwd()  # as `python -m pytest` has it: the project, not this script's folder
    import pytest
    warm = Warm(path, qualname, first_line, proto_in, proto_out, workdir)
    return pytest.main(args, plugins=[warm])  # after the last check: stdin closed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
