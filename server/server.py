"""The coedit language server: "Fix with model" for Python (pygls 2). Wiring only.

* `textDocument/codeAction` answers at once with a "Fix with model" action inside a function
  (tagged LLMGenerated when the client supports the tag); it never waits on a model.
* `workspace/executeCommand coedit.fix [uri, line, endLine?]` starts a background job
  (`server.fix.run_fix`) and returns; progress is server-initiated work-done progress, the chain of
  edits goes to `window/logMessage`, and a fix lands as one versioned `workspace/applyEdit`, only if
  the document is still at the version the job started from.
* `coedit.cancel [uri?]` (or the progress UI, or editing the document, or shutdown) cancels;
  a cancelled job applies nothing. One job per document; a second request says so.
* `coedit.report [uri?]` returns the last chain of edits as markdown.
stdout carries the protocol only: logging goes to stderr.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import to_fs_path

from . import __version__
from .edits import line_edits
from .fix import FixOutcome, ModelCache, run_fix
from .options import Options, options_from_json
from .target import find_target

log = logging.getLogger("coedit.server")
FIX, CANCEL, REPORT = "coedit.fix", "coedit.cancel", "coedit.report"


@dataclass
class Job:
    uri: str
    version: int | None
    cancel: threading.Event = field(default_factory=threading.Event)


class CoeditProtocol(LanguageServerProtocol):
    """pygls drops a request whose params do not fit the method's types, with no response; the
    client would wait forever. Answer it with the JSON-RPC error instead."""

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                self._send_response(data["id"], error=exc.to_response_error())
            raise


class CoeditServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("coedit", __version__, protocol_cls=CoeditProtocol)
        self.options = Options()
        self.models = ModelCache()
        self.jobs: dict[str, Job] = {}
        self.reports: dict[str, str] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lock = threading.Lock()

    def call(self, fn, *args) -> None:
        """Run `fn(*args)` on the event loop: job threads must not write to the stream themselves."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn, *args)

    def log(self, text: str, kind: types.MessageType = types.MessageType.Info) -> None:
        self.call(self.window_log_message, types.LogMessageParams(type=kind, message=text))

    def tell(self, text: str, kind: types.MessageType = types.MessageType.Info) -> None:
        self.call(self.window_show_message, types.ShowMessageParams(type=kind, message=text))


server = CoeditServer()


@server.feature(types.INITIALIZE)
def initialize(ls: CoeditServer, params: types.InitializeParams) -> None:
    ls.loop = asyncio.get_running_loop()
    ls.options, problems = options_from_json(params.initialization_options)
    threading.Thread(target=_unload_when_idle, args=(ls,), daemon=True).start()
    for p in problems:
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=f"coedit: {p}"))


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def did_change_configuration(ls: CoeditServer, params: types.DidChangeConfigurationParams) -> None:
    settings = params.settings.get("coedit", params.settings) if isinstance(params.settings, dict) else params.settings
    ls.options, problems = options_from_json(settings, ls.options)
    for p in problems:
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=f"coedit: {p}"))


@server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
def code_action(ls: CoeditServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    uri = params.text_document.uri
    if not uri.endswith(".py"):
        return []
    doc = ls.workspace.get_text_document(uri)
    start, end = params.range.start.line, params.range.end.line
    if find_target(doc.source, start, end) is None:
        return []
    caps = ls.client_capabilities.text_document
    tags = caps and caps.code_action and caps.code_action.tag_support
    llm = tags and types.CodeActionTag.LlmGenerated in tags.value_set
    title = "Fix with model" if uri not in ls.jobs else "Fix with model (running; runs coedit.cancel)"
    command = (types.Command(title=title, command=FIX, arguments=[uri, start, end]) if uri not in ls.jobs
               else types.Command(title=title, command=CANCEL, arguments=[uri]))
    return [types.CodeAction(title=title, kind=types.CodeActionKind.QuickFix, command=command,
                             tags=[types.CodeActionTag.LlmGenerated] if llm else None)]


@server.command(FIX)
def fix(ls: CoeditServer, *args) -> dict:
    ok = len(args) in (2, 3) and isinstance(args[0], str) and all(type(a) is int for a in args[1:])
    if not ok:
        raise ValueError("coedit.fix takes [uri: string, line: integer, endLine?: integer]")
    uri, line, end_line = args[0], args[1], (args[2] if len(args) == 3 else None)
    doc = ls.workspace.get_text_document(uri)
    with ls.lock:
        if uri in ls.jobs:
            ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning,
                                                           message="coedit: a fix is already running on this file"))
            return {"started": False, "reason": "already running"}
        job = ls.jobs[uri] = Job(uri, doc.version)
    threading.Thread(target=_run_job, args=(ls, job, doc.source, line, end_line), daemon=True).start()
    return {"started": True}


@server.command(CANCEL)
def cancel(ls: CoeditServer, *args) -> dict:
    uri = _optional_uri(args, CANCEL)
    jobs = [ls.jobs[uri]] if uri in ls.jobs else ([] if uri else list(ls.jobs.values()))
    for job in jobs:
        job.cancel.set()
    return {"cancelled": len(jobs)}


@server.command(REPORT)
def report(ls: CoeditServer, *args) -> str:
    uri = _optional_uri(args, REPORT)
    return ls.reports.get(uri or "", "") if uri else next(reversed(ls.reports.values()), "")


def _optional_uri(args: tuple, command: str) -> str | None:
    if len(args) > 1 or (args and not isinstance(args[0], str)):
        raise ValueError(f"{command} takes [uri?: string]")
    return args[0] if args else None


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: CoeditServer, params: types.DidChangeTextDocumentParams) -> None:
    job = ls.jobs.get(params.text_document.uri)
    if job is not None:
        job.cancel.set()  # the code under repair changed: the fix would be stale


@server.feature(types.SHUTDOWN)
def shutdown(ls: CoeditServer, *args) -> None:
    for job in list(ls.jobs.values()):
        job.cancel.set()
    ls.models.close()  # the model's process goes with the server


@server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
def progress_cancel(ls: CoeditServer, params: types.WorkDoneProgressCancelParams) -> None:
    for job in ls.jobs.values():
        if f"coedit-{id(job)}" == params.token:
            job.cancel.set()


def _unload_when_idle(ls: CoeditServer) -> None:
    """Give the model's memory back after `idleUnload` seconds without a fix."""
    while True:
        time.sleep(min(30.0, max(1.0, ls.options.idle_unload / 4)))
        if not ls.jobs and ls.models.unload_if_idle(ls.options.idle_unload):
            ls.log("coedit: model unloaded after being idle")


def _run_job(ls: CoeditServer, job: Job, source: str, line: int, end_line: int | None) -> None:
    """The background job: progress, the fix, and (if still current) one versioned edit."""
    token = f"coedit-{id(job)}"
    progress = ls.work_done_progress
    created = threading.Event()
    ls.call(lambda: asyncio.ensure_future(_create_progress(ls, token, created)))
    created.wait(5)
    ls.call(progress.begin, token, types.WorkDoneProgressBegin(title="coedit: Fix with model", cancellable=True))

    def event(text: str) -> None:
        ls.call(progress.report, token, types.WorkDoneProgressReport(message=text))
        ls.log(f"coedit: {text}")

    outcome = FixOutcome("error", "internal error")
    try:
        path = to_fs_path(job.uri)
        root = ls.workspace.root_path or str(Path(path).parent)
        outcome = run_fix(path, source, line, root, ls.options, ls.models, end_line=end_line, on_event=event,
                          cancelled=job.cancel.is_set)
        ls.reports[job.uri] = outcome.report
        if outcome.report:
            ls.log(outcome.report)
        if outcome.status == "fixed" and not job.cancel.is_set():
            outcome = _apply(ls, job, source, outcome)
    except Exception as e:  # the server must survive anything a job does
        log.exception("fix job failed")
        outcome = FixOutcome("error", f"coedit: the fix failed ({type(e).__name__}: {e})")
    finally:
        with ls.lock:
            ls.jobs.pop(job.uri, None)
        ls.call(progress.end, token, types.WorkDoneProgressEnd(message=outcome.message))
        kind = types.MessageType.Info if outcome.status in ("fixed", "already_passing") else types.MessageType.Warning
        ls.tell(f"coedit: {outcome.message}", kind)


async def _create_progress(ls: CoeditServer, token: str, created: threading.Event) -> None:
    try:
        await ls.work_done_progress.create_async(token)
    except Exception:  # a client without progress support still gets log messages
        pass
    finally:
        created.set()


def _apply(ls: CoeditServer, job: Job, source: str, outcome: FixOutcome) -> FixOutcome:
    doc = ls.workspace.get_text_document(job.uri)
    if doc.version != job.version or doc.source != source:
        return FixOutcome("not_applied", "The document changed while the fix ran; nothing was applied.",
                          report=outcome.report)
    encoding = ls.workspace.position_encoding or types.PositionEncodingKind.Utf16
    edit = types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=job.uri, version=job.version),
        edits=line_edits(source, outcome.new_source, encoding))])
    future = asyncio.run_coroutine_threadsafe(
        ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label="coedit: Fix with model")), ls.loop)
    result = future.result(timeout=30)
    if not result.applied:
        return FixOutcome("not_applied", f"The editor did not apply the fix ({result.failure_reason or 'no reason given'}).",
                          report=outcome.report)
    return outcome


def start() -> None:
    logging.basicConfig(level=logging.WARNING, format="coedit: %(message)s")  # stderr: stdout is the protocol
    server.start_io()
