"""The one sandbox: how untrusted code is contained, for every caller.

Containment, outermost first:
* **bubblewrap** (`bwrap`, Debian package `bubblewrap`): new pid, network, ipc and uts namespaces
  (no network at all, no view of other processes), the host file system read-only, a private
  `/tmp`, a fresh `/dev` and `/proc`, home directories hidden (only the interpreter and the paths a
  job needs are bound back), a cleared environment, killed with its parent.
* **An unprivileged uid** where we start as root (CI, containers): every `code + tests` run (and
  every general job) drops to `SANDBOX_UID`, so `RLIMIT_NPROC` is enforced (the kernel does not
  enforce it for root) and a run cannot signal or trace the fork server, which keeps uid 0 with
  only CAP_SETUID, CAP_SETGID and CAP_KILL. A workspace job (the user's own tests) keeps uid 0
  with no capabilities at all, since the user's files need not be readable by another uid.
  Without root the sandbox keeps the caller's uid inside a user namespace.
* **rlimits** per run (CPU seconds, address space, file size, open files, no core dumps), a
  wall-clock limit enforced from outside, the run's process group killed at the end, output capped.
* **The driver's audit hook and nonce-tagged results** (see `sandbox_child.py`): what makes a
  pass unforgeable.

Where bubblewrap is missing or cannot start (e.g. no user namespaces), runs fall back to plain
subprocesses with the same rlimits and audit hook, *visibly*: a warning is logged once and every
result carries `isolation="none"`.

The contract is deliberately general (`Job`: files to place, a command, an interpreter, extra
read-only paths, limits), so that running a workspace's pytest suite on an overlay is a second way
to fill the same sandbox, not a second sandbox. The fast path for `code + tests` is `ForkServer`:
one warm driver inside one bwrap, forking a child per run (`dsl/fork_server.py`). `staged(job)`
prepares a job without running it, for a caller that keeps the process alive (the warm workspace
runner in `server/`).
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import sandbox_child, sandbox_driver

log = logging.getLogger(__name__)

DRIVER = Path(sandbox_driver.__file__).resolve()
SANDBOX_UID = 64917  # unprivileged, used only by coedit sandboxes (when started as root)
NPROC_LIMIT = 256  # processes the sandbox uid may hold at once: bounds a fork bomb
GRACE_S = 2.0  # how long past its wall limit the supervisor waits before killing the sandbox


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0  # wall-clock seconds for one run
    cpu_s: float | None = None  # CPU seconds; default: wall_s + 1
    mem_mb: int = 1024  # address space
    out_bytes: int = 65536  # stdout+stderr kept; the rest is counted and dropped

    def for_driver(self) -> dict:
        cpu = self.cpu_s if self.cpu_s is not None else self.wall_s + 1
        return {"wall_s": self.wall_s, "cpu_s": cpu, "mem_mb": self.mem_mb, "out_bytes": self.out_bytes}


@dataclass
class Job:
    """One contained process: `files` (relative path -> bytes) are placed in a fresh working
    directory, `argv` runs there (argv[0] resolved with `interpreter` when it is "python"),
    `ro_paths` are made visible read-only (e.g. a virtualenv), `stdin` is fed. `{workdir}` in
    an argument becomes the working directory's path as the job sees it.

    With `workspace`, the job runs in that directory instead, read-only, with `overlays`
    (paths relative to it -> bytes) shadowing its files: a project's own tests against an edited
    file, the project untouched. (Without bubblewrap the workspace is copied, minus .git and
    virtualenvs, and the overlays written into the copy.)"""
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    interpreter: str = sys.executable
    ro_paths: list[str] = field(default_factory=list)
    stdin: bytes = b""
    limits: Limits = field(default_factory=Limits)
    env: dict[str, str] = field(default_factory=dict)
    pass_fds: tuple[int, ...] = ()
    # As root under bubblewrap a job runs as SANDBOX_UID, except a workspace job: the user's files
    # need not be readable by that uid, so it stays uid 0 with no capabilities (--cap-drop ALL),
    # confined all the same. via_driver=False: the driver itself, which drops its uid alone.
    drop_uid: bool = True
    via_driver: bool = True
    workspace: str | None = None
    overlays: dict[str, bytes] = field(default_factory=dict)


@dataclass
class JobResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    wall_s: float
    isolation: str
    workdir_files: dict[str, bytes] = field(default_factory=dict)  # files the job left, if asked


def _bwrap_prefix(ro_paths: list[str], switch_uid: bool, workdir: str | None, chdir: str | None = None,
                  binds: list[tuple[str, str]] = ()) -> list[str]:
    """bwrap arguments that give the contained process exactly the view described above."""
    args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid",
            "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--perms", "0777", "--tmpfs", "/tmp"]
    # /tmp without the sticky bit: the fork server (without CAP_FOWNER) can empty it between runs
    homes = sorted({str(Path(h).resolve()) for h in ("/root", os.path.expanduser("~")) if h and os.path.isdir(h)})
    for h in homes:
        args += ["--perms", "0755", "--tmpfs", h]
    hidden = [*homes, "/tmp"]  # the private /tmp hides the host's too
    made: set[str] = set()
    for p in sorted({str(Path(p).resolve()) for p in ro_paths}):
        home = next((h for h in hidden if p == h or p.startswith(h + "/")), None)
        if home is None:
            continue  # already visible through the read-only root
        parent = Path(p).parent
        for d in reversed([parent, *parent.parents]):  # bwrap makes parents 0700 unless told
            if str(d).startswith(home + "/") and str(d) not in made:
                args += ["--perms", "0755", "--dir", str(d)]
                made.add(str(d))
        args += ["--ro-bind", p, p]
    if workdir:
        args += ["--bind", workdir, "/tmp/work"]
    for src, dest in binds:  # read-only files shadowing others (after the paths they sit in)
        args += ["--ro-bind", src, dest]
    args += ["--chdir", chdir or ("/tmp/work" if workdir else "/tmp")]
    args += ["--cap-drop", "ALL"]  # as root, bwrap would otherwise keep uid 0's capabilities
    if switch_uid:  # the driver switches runs to SANDBOX_UID (their setuid() clears these) and
        # the fork server must kill runs of that uid
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    return args


def _interpreter_paths(interpreter: str) -> list[str]:
    """Directories an interpreter needs to start: its own prefix (a virtualenv, say) and the one
    its executable resolves to (the base installation)."""
    paths = [str(Path(os.path.abspath(interpreter)).parent.parent),
             str(Path(os.path.realpath(interpreter)).parent.parent)]
    if os.path.realpath(interpreter) == os.path.realpath(sys.executable):
        paths += [sys.prefix, sys.base_prefix]
    return paths


@functools.lru_cache(maxsize=None)
def isolation() -> str:
    """"bwrap" when bubblewrap works here, else "none" (with a warning, once)."""
    if shutil.which("bwrap"):
        probe = _bwrap_prefix(_interpreter_paths(sys.executable), os.getuid() == 0, None)
        try:
            r = subprocess.run([*probe, os.path.realpath(sys.executable), "-I", "-S", "-c", "pass"],
                               capture_output=True, timeout=30)
            if r.returncode == 0:
                return "bwrap"
            why = r.stderr.decode(errors="replace").strip()[:200]
        except (OSError, subprocess.TimeoutExpired) as e:
            why = str(e)
    else:
        why = "bwrap not found (install the Debian package 'bubblewrap')"
    log.warning("coedit sandbox: running WITHOUT namespace isolation: %s", why)
    return "none"


def _env(extra: dict[str, str]) -> dict[str, str]:
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": "/tmp"}
    return {**base, **extra}


def _wrap(argv: list[str], ro_paths: list[str], workdir: str | None, env: dict[str, str], chdir: str | None = None,
          binds: list[tuple[str, str]] = (), switch_uid: bool = True) -> tuple[list[str], dict, str]:
    """The full command line for `argv` under the current isolation, its env, and that isolation."""
    iso = isolation()
    if iso == "bwrap":
        prefix = _bwrap_prefix(ro_paths, switch_uid and os.getuid() == 0, workdir, chdir, binds)
        prefix += ["--clearenv"] + [a for k, v in env.items() for a in ("--setenv", k, v)]
        return [*prefix, *argv], {}, iso
    return argv, env, iso


def run_job(job: Job, *, collect: list[str] = ()) -> JobResult:
    """Run `job` in a fresh sandboxed process; `collect` names files to read back afterwards.

    As root under bubblewrap the job goes through the driver's `--exec` mode, so it runs as
    SANDBOX_UID with the job's rlimits, like every other sandboxed run.
    """
    with staged(job) as st:
        start = time.monotonic()
        proc = st.popen()
        out, err, timed_out = _communicate_capped(proc, job.stdin, job.limits.out_bytes, start + job.limits.wall_s)
        _kill_group(proc)
        files = {name: Path(st.work, name).read_bytes() for name in collect if Path(st.work, name).is_file()}
        return JobResult(None if timed_out else proc.returncode, out.decode("utf-8", "replace"),
                         err.decode("utf-8", "replace"), timed_out, time.monotonic() - start, st.isolation, files)


@dataclass
class Staged:
    """A job made ready to start: its command line under the current isolation, and its working
    directory (`work`, a temporary directory on this side) that lives as long as the `staged` block."""
    job: Job
    cmd: list[str]
    env: dict
    cwd: str
    isolation: str
    work: str

    def popen(self) -> subprocess.Popen:
        preexec = _limits_preexec(self.job.limits) if self.isolation == "none" or os.getuid() != 0 else None
        return subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=self.cwd, env=self.env or None, start_new_session=True,
                                pass_fds=self.job.pass_fds, preexec_fn=preexec)


@contextlib.contextmanager
def staged(job: Job):
    """The job's files placed, its workspace and overlays laid out, its command line built: what
    `run_job` runs once and `server`'s warm workspace runner keeps alive."""
    interp = os.path.abspath(job.interpreter)  # not resolved: a virtualenv is found via its path
    argv = [interp if a == "python" else a for a in job.argv]
    if job.via_driver and os.getuid() == 0 and isolation() == "bwrap":
        argv = [*driver_argv(sys.executable, "--exec", job.drop_uid and not job.workspace), "--limits",
                json.dumps(job.limits.for_driver()), "--", *argv]
    with tempfile.TemporaryDirectory(prefix="coedit-job-") as work:
        for rel, data in job.files.items():
            dest = _inside(Path(work), rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        os.chmod(work, 0o777)  # the sandbox uid writes here
        for dirpath, dirs, files in os.walk(work):
            for name in dirs + files:
                os.chmod(os.path.join(dirpath, name), 0o777 if name in dirs else 0o666)
        ro = [*_interpreter_paths(interp), *_interpreter_paths(sys.executable), str(DRIVER.parent), *job.ro_paths]
        chdir, binds, cwd = None, [], work
        if job.workspace:
            ws = str(Path(job.workspace).resolve())
            if isolation() == "bwrap":
                ro.append(ws)
                chdir = ws
                for rel, data in job.overlays.items():
                    src = _inside(Path(work, ".overlay"), rel)
                    src.parent.mkdir(parents=True, exist_ok=True)
                    src.write_bytes(data)
                    os.chmod(src, 0o644)
                    binds.append((str(src), str(_inside(Path(ws), rel))))
            else:
                cwd = str(Path(work, "workspace"))
                shutil.copytree(ws, cwd, symlinks=True, ignore=shutil.ignore_patterns(*_NOT_COPIED))
                for rel, data in job.overlays.items():
                    _inside(Path(cwd), rel).write_bytes(data)
        inside = "/tmp/work" if isolation() == "bwrap" else work  # the workdir as the job sees it
        argv = [a.replace("{workdir}", inside) for a in argv]
        cmd, env, iso = _wrap(argv, ro, work, _env(job.env), chdir, binds, job.drop_uid and not job.workspace)
        if iso == "none":
            env = {**env, "HOME": work, "TMPDIR": work}
        yield Staged(job, cmd, env, cwd, iso, work)


_NOT_COPIED = (".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache", ".tox")


def _inside(base: Path, rel: str) -> Path:
    """`base / rel`, refusing a relative path that climbs out of `base`."""
    dest = (base / rel).resolve()
    if not str(dest).startswith(str(base.resolve()) + os.sep):
        raise ValueError(f"job file escapes the working directory: {rel}")
    return dest


def _communicate_capped(proc: subprocess.Popen, stdin: bytes, limit: int, deadline: float) -> tuple[bytes, bytes, bool]:
    """Feed stdin, read stdout/stderr as they come, keeping at most `limit` bytes of the two
    together (the rest is read and dropped, so a flood costs no memory here); kill at `deadline`."""
    def feed() -> None:
        try:
            proc.stdin.write(stdin)
        except OSError:
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    kept = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    open_fds, timed_out = list(kept), False
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            _kill_group(proc)
            break
        for fd in select.select(open_fds, [], [], left)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.remove(fd)
                continue
            room = limit - sum(len(b) for b in kept.values())
            kept[fd] += chunk[:max(0, room)]
    proc.wait()
    feeder.join(timeout=1)
    return bytes(kept[proc.stdout.fileno()]), bytes(kept[proc.stderr.fileno()]), timed_out


def _limits_preexec(limits: Limits):
    def apply() -> None:
        sandbox_child.set_limits(limits.for_driver())
    return apply


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def driver_argv(interpreter: str, mode: str, drop_uid: bool = True) -> list[str]:
    argv = [os.path.realpath(interpreter), "-I", "-S", str(DRIVER), mode]
    if isolation() == "bwrap":
        argv.append("--pidns")  # the server may clean its own namespace between runs
        if os.getuid() == 0 and drop_uid:
            argv += ["--uid", str(SANDBOX_UID), "--nproc", str(NPROC_LIMIT)]
    return argv
