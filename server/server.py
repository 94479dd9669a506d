"""The coedit language server: "Fix with model" for Python (pygls 2). Wiring only.

* `textDocument/codeAction` answers at once with a "Fix with model" action inside a function
  (tagged LLMGenerated when the client supports the tag); it never waits on a model.
* `workspace/executeCommand coedit.fix [uri, line, endLine?]` starts a background job (server/jobs.py:
  `server.fix.run_fix`) and returns; progress is server-initiated work-done progress, the chain of
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
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from . import __version__
from .fix import ModelCache
from .jobs import Job, cancel_jobs, start_job, unload_when_idle
from .options import Options, options_from_json
from .target import find_target

FIX, CANCEL, REPORT = "coedit.fix", "coedit.cancel", "coedit.report"

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
        self.jobs: dict[str, Job] = {}  # uri -> its running fix (server/jobs.py)
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
    threading.Thread(target=unload_when_idle, args=(ls,), daemon=True).start()
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
    return start_job(ls, args[0], args[1], args[2] if len(args) == 3 else None)


@server.command(CANCEL)
def cancel(ls: CoeditServer, *args) -> dict:
    return {"cancelled": cancel_jobs(ls, _optional_uri(args, CANCEL))}


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
    cancel_jobs(ls, params.text_document.uri)  # the code under repair changed: the fix would be stale


@server.feature(types.SHUTDOWN)
def shutdown(ls: CoeditServer, *args) -> None:
    cancel_jobs(ls)
    ls.models.close()  # the model's process goes with the server


@server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
def progress_cancel(ls: CoeditServer, params: types.WorkDoneProgressCancelParams) -> None:
    cancel_jobs(ls, token=str(params.token))


def start() -> None:
    logging.basicConfig(level=logging.WARNING, format="coedit: %(message)s")  # stderr: stdout is the protocol
    server.start_io()
