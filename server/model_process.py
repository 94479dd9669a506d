"""The model in a process of its own: a crash of native code (llama.cpp, torch) is an error message,
never the death of the language server, of `coedit fix` or of an evaluation.

    model = ModelProcess("models/default/coedit.gguf", temperature=0.0)   # starts the worker, loads
    model(messages)            -> the next command (a `dsl` policy, as a backend is)
    model(messages, temperature=0.7), model.score(messages, replies), model.prompt_tokens(messages),
    model.read_seconds(messages)
    model.deadline = time.monotonic() + 30   # replies end by then, or raise dsl.OutOfTime
    model.close()

The worker (`python -m server.model_process`) loads a backend (`server.backends.load_backend`) and
answers one JSON request per line. The per-token grammar check stays with the tokens, inside the
worker; one round trip carries a conversation in and a command out (its cost against a turn:
`bench/model_runtime.py`). When the worker dies (a signal, an exit) or stops answering, the call
raises `ModelCrashed`, a `ModelError` whose message names the signal; the object is then dead
(`alive` is False) and the owner starts a fresh one for the next job. Nothing the worker was doing
can have touched the user's files: it only ever sees conversations.

A reply's deadline (`time.monotonic()`, one clock for every process on the machine) goes with each
request: the worker's backend stops decoding there and the call raises `dsl.OutOfTime`.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

from dsl import OutOfTime

from .backends import ModelError

# a reply is at most a few hundred tokens; a worker silent this long is hung, not busy
ANSWER_TIMEOUT_S = 600.0
# loading reads a model file (a 1.5B GGUF takes seconds; a torch checkpoint longer)
LOAD_TIMEOUT_S = 600.0


class ModelCrashed(ModelError):
    """The model's process died or stopped answering; `signal` names how, when a signal did it."""

    def __init__(self, message: str, signal_name: str = ""):
        super().__init__(message)
        self.signal = signal_name


def _how_it_ended(code: int | None) -> tuple[str, str]:
    """(what the user reads, the signal's name or "") for a worker's exit status."""
    if code is None:
        return "stopped answering", ""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = (" (an instruction this CPU lacks: was llama-cpp-python built on another machine?)"
                if name == "SIGILL" else "")
        return f"crashed ({name}){hint}", name
    return f"exited (status {code})", ""


class ModelProcess:
    """A model served by a worker process; a `dsl` policy like the backends it runs."""

    def __init__(self, path: str, **options) -> None:
        self.path = str(path)
        self.options = options
        self.context = 0
        self.generated_tokens = 0
        self.overflows = 0
        self._lock = threading.Lock()
        self._dead: ModelCrashed | None = None
        self.deadline: float | None = None  # sent with each request for a reply (the module docstring)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.model_process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None, text=True, encoding="utf-8", bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            info = self._ask({"op": "load", "path": self.path, "options": options}, LOAD_TIMEOUT_S)
        except ModelError:
            self.close()
            raise
        self.context = info["context"]
        self.kind = info["kind"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self._dead is None and self.proc.poll() is None

    def __call__(self, messages: list[dict[str, str]], temperature: float | None = None, *,
                 deadline: float | None = None) -> str:
        """The next command; `deadline` (else the object's own) is when it must be whole by."""
        return self._ask({"op": "reply", "messages": messages, "temperature": temperature,
                          "deadline": deadline or self.deadline})["text"]

    def score(self, messages: list[dict[str, str]], replies: list[str]) -> list[list[float]]:
        return self._ask({"op": "score", "messages": messages, "replies": replies})["scores"]

    def complete(self, messages: list[dict[str, str]], prefix: str, n: int, temperature: float = 0.7, *,
                 deadline: float | None = None) -> list[str]:
        """`n` replies starting with `prefix` (line proposals; the backend's `complete`)."""
        return self._ask({"op": "complete", "messages": messages, "prefix": prefix, "n": n,
                          "temperature": temperature, "deadline": deadline or self.deadline})["texts"]

    def complete_each(self, messages: list[dict[str, str]], asks: list[tuple[str, int]],
                      temperature: float = 0.7, *, deadline: float | None = None) -> list[list[str]]:
        """`complete` for each (prefix, n) of `asks`, in one request (the backend decodes them side by side)."""
        return self._ask({"op": "complete_each", "messages": messages, "asks": asks,
                          "temperature": temperature, "deadline": deadline or self.deadline})["texts"]

    def read_seconds(self, messages: list[dict[str, str]]) -> float:
        """About how long the model would read `messages` before replying (0: it cannot tell)."""
        return self._ask({"op": "read_seconds", "messages": messages})["seconds"]

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """How many tokens `messages` take in the model's own format."""
        return self._ask({"op": "prompt_tokens", "messages": messages})["tokens"]

    def _ask(self, request: dict, timeout: float = ANSWER_TIMEOUT_S) -> dict:
        with self._lock:
            if self._dead is not None:
                raise self._dead
            line = ""
            try:
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
                ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
                line = self.proc.stdout.readline() if ready else ""
            except (BrokenPipeError, OSError, ValueError):
                line = ""
            if not line:
                raise self._died(timed_out=not self._exited_within(5.0))
        answer = json.loads(line)
        self.generated_tokens = answer.get("generated_tokens", self.generated_tokens)
        self.overflows = answer.get("overflows", self.overflows)
        if "error" in answer:
            kind = {"ValueError": ValueError, "OutOfTime": OutOfTime}.get(answer.get("kind"), ModelError)
            raise kind(answer["error"])
        return answer

    def _exited_within(self, seconds: float) -> bool:
        try:
            self.proc.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _died(self, timed_out: bool) -> ModelCrashed:
        if timed_out:
            self.proc.kill()
            self.proc.wait()
        how, name = _how_it_ended(None if timed_out else self.proc.returncode)
        self._dead = ModelCrashed(f"the model process {how}", name)
        return self._dead

    def close(self) -> None:
        """Stops the worker (the model's memory goes with it)."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the worker's loop ends at end of input
            except OSError:
                pass
            if not self._exited_within(5.0):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if self._dead is None:
            self._dead = ModelCrashed("the model process was closed")

    def __del__(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()


def _serve(requests, answer) -> None:
    """The worker's loop: a backend, then one answer per request until the input ends."""
    from dsl.model_asks import complete_each

    from .backends import load_backend
    backend = None
    for line in requests:
        request = json.loads(line)
        op = request["op"]
        if hasattr(backend, "deadline"):  # a reply's own (none for the other requests)
            backend.deadline = request.get("deadline")
        try:
            if op == "load":
                backend = load_backend(request["path"], **request["options"])
                out = {"context": getattr(backend, "context", 0), "kind": type(backend).__name__}
            elif op == "reply":
                out = {"text": backend(request["messages"], temperature=request["temperature"])}
            elif op == "score":
                out = {"scores": backend.score(request["messages"], request["replies"])}
            elif op == "complete":
                complete = getattr(backend, "complete", None)
                out = {"texts": complete(request["messages"], request["prefix"], request["n"], request["temperature"])
                       if complete else []}
            elif op == "complete_each":
                out = {"texts": complete_each(backend, request["messages"], [tuple(a) for a in request["asks"]],
                                              request["temperature"])}
            elif op == "read_seconds":
                read = getattr(backend, "read_seconds", None)
                out = {"seconds": read(request["messages"]) if read else 0.0}
            elif op == "prompt_tokens":
                out = {"tokens": len(backend.fmt.prompt(request["messages"])) if hasattr(backend, "fmt") else 0}
            else:
                out = {"error": f"unknown request {op!r}"}
        except Exception as e:  # an error in Python is an answer; only native crashes end the worker
            said = isinstance(e, (ModelError, ValueError, OutOfTime))  # messages written for the user
            out = {"error": str(e) if said else f"{type(e).__name__}: {e}",
                   "kind": next((k.__name__ for k in (ValueError, OutOfTime) if isinstance(e, k)), "ModelError")}
        if backend is not None:
            out["generated_tokens"] = getattr(backend, "generated_tokens", 0)
            out["overflows"] = getattr(backend, "overflows", 0)
        answer(json.dumps(out))


def _exit_with_parent(parent: int) -> None:
    """Ends the worker once its parent is gone (killed, crashed): a generation in progress would
    otherwise run on for nobody, holding the cores, until it next reads its closed input."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def main() -> None:
    # the protocol gets a private copy of stdout; fd 1 then points at stderr, so whatever native
    # code prints (llama.cpp logs, a library's print) cannot corrupt an answer
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an editor's ^C to the server is not ours to die of
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()

    def answer(text: str) -> None:
        protocol.write(text + "\n")
        protocol.flush()
    _serve(sys.stdin, answer)


if __name__ == "__main__":
    main()
