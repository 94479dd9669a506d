"""The language server's fix jobs: one background thread per document, its progress, its cancel,
and the one versioned edit it may end with. Plain functions over the server (`ls`, a
`server.server.CoeditServer`), which wires them to LSP methods.

A job runs `server.fix.run_fix` off the event loop; it never writes to the stream itself (every
message goes through `ls.call`, onto the loop). Progress is server-initiated work-done progress, the
chain of edits goes to `window/logMessage`, and a fix lands as one versioned `workspace/applyEdit`,
only if the document is still at the version the job started from. Cancelling (coedit.cancel, the
progress UI, an edit of the document, shutdown) sets the job's event; a cancelled job applies nothing.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types
from pygls.uris import to_fs_path

from .edits import line_edits
from .fix import FixOutcome, run_fix

log = logging.getLogger("coedit.server")


@dataclass
class Job:
    uri: str
    version: int | None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def token(self) -> str:
        """Its work-done progress token."""
        return f"coedit-{id(self)}"


def start_job(ls, uri: str, line: int, end_line: int | None) -> dict:
    """A fix of the function at `line` (..`end_line`) of document `uri`, started in the background;
    refused (with a message) while one runs on the same document."""
    doc = ls.workspace.get_text_document(uri)
    with ls.lock:
        if uri in ls.jobs:
            ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning,
                                                           message="coedit: a fix is already running on this file"))
            return {"started": False, "reason": "already running"}
        job = ls.jobs[uri] = Job(uri, doc.version)
    threading.Thread(target=run_job, args=(ls, job, doc.source, line, end_line), daemon=True).start()
    return {"started": True}


def cancel_jobs(ls, uri: str | None = None, token: str | None = None) -> int:
    """Cancel the job on `uri`, the one with progress `token`, or (neither given) every job."""
    jobs = [j for j in list(ls.jobs.values())
            if (uri is None or j.uri == uri) and (token is None or j.token == token)]
    for job in jobs:
        job.cancel.set()
    return len(jobs)


def unload_when_idle(ls) -> None:
    """Give the model's memory back after `idleUnload` seconds without a fix."""
    while True:
        time.sleep(min(30.0, max(1.0, ls.options.idle_unload / 4)))
        if not ls.jobs and ls.models.unload_if_idle(ls.options.idle_unload):
            ls.log("coedit: model unloaded after being idle")


def run_job(ls, job: Job, source: str, line: int, end_line: int | None) -> None:
    """The background job: progress, the fix, and (if still current) one versioned edit."""
    token = job.token
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


async def _create_progress(ls, token: str, created: threading.Event) -> None:
    try:
        await ls.work_done_progress.create_async(token)
    except Exception:  # a client without progress support still gets log messages
        pass
    finally:
        created.set()


def _apply(ls, job: Job, source: str, outcome: FixOutcome) -> FixOutcome:
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
