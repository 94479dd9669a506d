"""The fast path for `code + tests`: one warm sandbox driver forking a child per run
(`ForkServer`), and `run_fresh`, the same run in a brand-new sandboxed interpreter (the fallback
and the baseline). Containment is `dsl/sandbox.py`'s; this file only keeps a driver alive.
"""
from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import threading
import time

from . import sandbox_child, sandbox_driver
from .sandbox import DRIVER, GRACE_S, Job, Limits, _env, _interpreter_paths, _kill_group, _wrap, driver_argv, isolation, run_job


def run_fresh(request: dict, limits: Limits) -> dict:
    """One `code + tests` run in a brand-new sandboxed interpreter (the fallback and the baseline)."""
    nonce = os.urandom(16).hex()
    read_fd, write_fd = os.pipe()
    try:
        argv = [*driver_argv(sys.executable, "--once"), "--results-fd", str(write_fd)]
        job = Job(argv, stdin=json.dumps({**request, "nonce": nonce, "limits": limits.for_driver()}).encode(),
                  limits=limits, pass_fds=(write_fd,), via_driver=False)  # the driver drops its uid itself
        result = run_job(job)
    finally:
        os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    return {"records": sandbox_child.parse_records(data, nonce), "output": result.stdout + result.stderr,
            "output_dropped": 0, "timed_out": result.timed_out, "exit_code": result.returncode,
            "wall_s": result.wall_s, "isolation": result.isolation}


class ForkServer:
    """A warm driver inside one sandbox, forking a child per run (milliseconds per run).

    Thread-safe (one run at a time per server); restarts itself if the server dies or stops
    answering. Use one per worker process for parallel verification.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.isolation = isolation()

    def _start(self) -> None:
        argv = driver_argv(sys.executable, "--serve")
        cmd, env, iso = _wrap(argv, [*_interpreter_paths(sys.executable), str(DRIVER.parent)], None, _env({}))
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      env=env or None, start_new_session=True)
        hello = self._read(timeout=30)
        if not hello or not hello.get("ready"):
            self.close()
            raise RuntimeError("coedit sandbox: the fork server did not start")

    def _read(self, timeout: float) -> dict | None:
        """One frame from the server, or None if it does not come within `timeout`."""
        assert self._proc and self._proc.stdout
        fd, buf, deadline = self._proc.stdout.fileno(), b"", time.monotonic() + timeout
        need = 4
        while len(buf) < need:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, max(65536, need - len(buf)))
            if not chunk:
                return None
            buf += chunk
            if need == 4 and len(buf) >= 4:
                need = 4 + struct.unpack(">I", buf[:4])[0]
        return json.loads(buf[4:need])

    def run(self, request: dict, limits: Limits) -> dict:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            assert self._proc and self._proc.stdin
            try:
                sandbox_driver.write_frame(self._proc.stdin.fileno(), {**request, "limits": limits.for_driver()})
                resp = self._read(timeout=limits.wall_s + GRACE_S)
            except OSError:
                resp = None
            if resp is not None and "error" not in resp:
                return {**resp, "isolation": self.isolation}
            self.close()  # dead, hung or broken: the next run starts a fresh server
            why = resp["error"] if resp else "no answer from the fork server"
            return {"records": [], "output": "", "output_dropped": 0, "timed_out": resp is None,
                    "exit_code": None, "wall_s": limits.wall_s, "isolation": self.isolation,
                    "infra_error": f"sandbox failed: {why}"}

    def close(self) -> None:
        if self._proc is not None:
            _kill_group(self._proc)
            self._proc.wait()
            for f in (self._proc.stdin, self._proc.stdout):
                if f:
                    f.close()
            self._proc = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
