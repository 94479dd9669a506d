"""The real language server over stdio (pytest-lsp), with VS Code's and Neovim's client profiles.

Policies here are *scripted* (`model = "scripted:FILE"`, a file of commands): deterministic, and
named as such in each test. The workspace is real: a package with a buggy function and pytest
tests, which the server runs in the dsl sandbox.
"""
from __future__ import annotations

import ast
import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from server.edits import apply_edits

ROOT = Path(__file__).resolve().parents[1]
BUGGY = 'def add(a, b):\n    """Add two numbers."""\n    return a - b\n\n\ndef lonely(x):\n    return x\n'
TESTS = "from pkg.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n"
FIX = "REPW 3 >>>a - b >>>a + b\n"
SLOW = "ADDL 3 >>>    pass\n" * 9  # ten turns of harmless edits: long enough to cancel


def make_workspace(root: Path, script: str) -> None:
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "calc.py").write_text(BUGGY)
    (root / "pkg" / "other.py").write_text(BUGGY)
    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "test_calc.py").write_text(TESTS)
    (root / "script.txt").write_text(script)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "server"], server_env=None),
                    params=["visual_studio_code", "neovim"])
async def client(lsp_client: LanguageClient, request, tmp_path):
    make_workspace(tmp_path, FIX)
    lsp_client.applied = []  # edits the "editor" applied
    lsp_client.buffers = {}

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        for change in params.edit.document_changes or []:
            uri = change.text_document.uri
            version, text = lsp_client.buffers[uri]
            if change.text_document.version != version:
                return types.ApplyWorkspaceEditResult(applied=False, failure_reason="stale version")
            new = apply_edits(text, change.edits)
            lsp_client.buffers[uri] = (version + 1, new)
            Path(uri.removeprefix("file://")).write_text(new)  # the editor saves
            lsp_client.applied.append(change)
        return types.ApplyWorkspaceEditResult(applied=True)

    params = types.InitializeParams(
        capabilities=client_capabilities(request.param), root_uri=tmp_path.as_uri(),
        initialization_options={"model": f"scripted:{tmp_path / 'script.txt'}", "k": 2, "timeout": 60,
                                "proposers": ["episodes"]},
        workspace_folders=[types.WorkspaceFolder(uri=tmp_path.as_uri(), name="ws")])
    await lsp_client.initialize_session(params)
    lsp_client.root = tmp_path
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, rel: str) -> str:
    path = client.root / rel
    uri = path.as_uri()
    client.buffers[uri] = (1, path.read_text())
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=path.read_text())))
    return uri


async def code_actions(client: LanguageClient, uri: str, line: int) -> list[types.CodeAction]:
    pos = types.Position(line=line, character=4)
    result = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=pos, end=pos),
        context=types.CodeActionContext(diagnostics=[])))
    return [_as_code_action(item) for item in result or []]


def _as_code_action(item) -> types.CodeAction:
    """The test client's converter decodes `Command | CodeAction` as a Command first, turning a
    CodeAction's nested command object into its Python repr; undo that (a client-side quirk)."""
    if isinstance(item, types.CodeAction):
        return item
    nested = ast.literal_eval(item.command)
    return types.CodeAction(title=item.title, kind=types.CodeActionKind.QuickFix,
                            command=types.Command(title=nested["title"], command=nested["command"],
                                                  arguments=nested.get("arguments")),
                            tags=None)


async def wait_for(predicate, seconds: float = 90) -> None:
    for _ in range(int(seconds * 10)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out waiting")


def ended(client: LanguageClient) -> list[types.WorkDoneProgressEnd]:
    return [r for rs in client.progress_reports.values() for r in rs if isinstance(r, types.WorkDoneProgressEnd)]


@pytest.mark.asyncio
async def test_code_action_inside_a_function_only(client):
    uri = open_doc(client, "pkg/calc.py")
    actions = await code_actions(client, uri, 2)
    assert [a.title for a in actions] == ["Fix with model"]
    assert actions[0].command.command == "coedit.fix" and actions[0].command.arguments[0] == uri
    assert actions[0].tags is None  # neither profile advertises the LLMGenerated tag
    assert await code_actions(client, uri, 3) == []  # a blank line between functions


@pytest.mark.asyncio
async def test_fix_applies_one_versioned_edit_and_the_test_then_passes_scripted_policy(client):
    uri = open_doc(client, "pkg/calc.py")
    started = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="coedit.fix", arguments=[uri, 2]))
    assert started == {"started": True}
    await wait_for(lambda: ended(client))
    assert len(client.applied) == 1 and client.applied[0].text_document.version == 1
    assert "return a + b" in client.buffers[uri][1]
    assert "Fixed add" in ended(client)[0].message
    reports = [r for rs in client.progress_reports.values() for r in rs if isinstance(r, types.WorkDoneProgressReport)]
    assert any("model · episode 1 · turn 1 · REPW 3 · 2/2 tests pass" in r.message for r in reports)
    assert any("REPW 3 >>>a - b >>>a + b" in m.message for m in client.log_messages)  # the chain of edits
    report = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="coedit.report", arguments=[uri]))
    assert "## Episode 1: solved" in report
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=client.root, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout


@pytest.mark.asyncio
async def test_the_default_engine_fixes_a_flipped_operator_by_search_without_loading_the_model(client):
    """`return a - b` is fixed for a reason: the edit search tries the usual mistake of `-` first."""
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"coedit": {"proposers": ["search", "model"]}}))
    uri = open_doc(client, "pkg/calc.py")
    await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.fix", arguments=[uri, 2]))
    await wait_for(lambda: ended(client))
    message = ended(client)[0].message
    assert message.startswith("Fixed add: fixed by search (1 edit)"), message
    assert len(client.applied) == 1 and "return a + b" in client.buffers[uri][1]
    assert model_pids(client) == []  # the search found it: no model was loaded
    report = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="coedit.report", arguments=[uri]))
    assert "**Fixed by search**" in report and "`REPW 3 >>>- >>>+`" in report
    assert "Judged by 2 test(s): `tests/test_calc.py::test_add`, `tests/test_calc.py::test_zero`." in report


@pytest.mark.asyncio
async def test_cancel_mid_run_applies_nothing_scripted_policy(client):
    (client.root / "script.txt").write_text(SLOW)
    uri = open_doc(client, "pkg/calc.py")
    await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.fix", arguments=[uri, 2]))
    await wait_for(lambda: any(isinstance(r, types.WorkDoneProgressReport) and "turn 1" in (r.message or "")
                               for rs in client.progress_reports.values() for r in rs))
    # code actions answer while the fix runs, and offer to cancel it
    actions = await code_actions(client, uri, 2)
    assert actions[0].command.command == "coedit.cancel"
    assert not ended(client)
    await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.cancel", arguments=[uri]))
    await wait_for(lambda: ended(client))
    assert client.applied == [] and "Cancelled" in ended(client)[0].message
    assert (client.root / "pkg" / "calc.py").read_text() == BUGGY


def model_pids(client: LanguageClient) -> list[int]:
    """The model processes the server started, in order ("model loaded (process N)" reports)."""
    return [int(m.group(1)) for rs in client.progress_reports.values() for r in rs
            if isinstance(r, types.WorkDoneProgressReport) and (m := re.search(r"process (\d+)", r.message or ""))]


@pytest.mark.asyncio
async def test_a_model_process_killed_mid_fix_is_an_error_message_and_the_next_fix_works_scripted_policy(client):
    """A real SIGSEGV to the model's process in the middle of a fix: the server answers at once,
    the user is told, nothing is applied, and the next Fix starts a new process and fixes."""
    (client.root / "script.txt").write_text(SLOW)
    uri = open_doc(client, "pkg/calc.py")
    await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.fix", arguments=[uri, 2]))
    await wait_for(lambda: any(isinstance(r, types.WorkDoneProgressReport) and "turn 1" in (r.message or "")
                               for rs in client.progress_reports.values() for r in rs))
    [pid] = model_pids(client)
    os.kill(pid, signal.SIGSEGV)
    t0 = time.monotonic()
    actions = await code_actions(client, uri, 2)
    assert time.monotonic() - t0 < 1.0 and actions  # the server answers at once
    await wait_for(lambda: ended(client))
    message = ended(client)[0].message
    assert "The model process crashed (SIGSEGV)" in message and "nothing was changed" in message, message
    assert any("crashed (SIGSEGV)" in m.message for m in client.messages)  # shown to the user
    assert client.applied == [] and (client.root / "pkg" / "calc.py").read_text() == BUGGY
    (client.root / "script.txt").write_text(FIX)
    await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.fix", arguments=[uri, 2]))
    await wait_for(lambda: len(ended(client)) == 2)
    assert "Fixed add" in ended(client)[1].message and len(client.applied) == 1
    assert len(set(model_pids(client))) == 2  # a new process


@pytest.mark.asyncio
async def test_a_document_change_cancels_and_applies_nothing_scripted_policy(client):
    (client.root / "script.txt").write_text(SLOW)
    uri = open_doc(client, "pkg/calc.py")
    await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.fix", arguments=[uri, 2]))
    await wait_for(lambda: client.progress_reports)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=BUGGY + "# edited\n")]))
    await wait_for(lambda: ended(client))
    assert client.applied == []


@pytest.mark.asyncio
async def test_second_fix_on_the_same_document_says_so_and_two_documents_run_at_once(client):
    (client.root / "script.txt").write_text(SLOW + FIX)
    a, b = open_doc(client, "pkg/calc.py"), open_doc(client, "pkg/other.py")
    first = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.fix", arguments=[a, 2]))
    again = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.fix", arguments=[a, 2]))
    other = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.fix", arguments=[b, 2]))
    assert first == other == {"started": True} and again == {"started": False, "reason": "already running"}
    await wait_for(lambda: len(ended(client)) == 2, 180)
    assert any("already running" in m.message for m in client.messages)


@pytest.mark.asyncio
async def test_no_tests_found_gives_a_clear_message(client):
    uri = open_doc(client, "pkg/calc.py")
    await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.fix", arguments=[uri, 6]))
    await wait_for(lambda: ended(client))
    assert "no tests found for lonely" in ended(client)[0].message and client.applied == []


@pytest.mark.asyncio
async def test_missing_model_gives_a_clear_message(client):
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"coedit": {"model": str(client.root / "no-such-model.gguf")}}))
    uri = open_doc(client, "pkg/calc.py")
    await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.fix", arguments=[uri, 2]))
    await wait_for(lambda: ended(client))
    assert "no such model" in ended(client)[0].message and client.applied == []


@pytest.mark.asyncio
async def test_bad_arguments_and_params_get_error_responses_and_the_server_lives(client):
    uri = open_doc(client, "pkg/calc.py")
    with pytest.raises(Exception):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.fix", arguments=[123]))
    with pytest.raises(Exception):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(command="coedit.fix",
                                                                                arguments=[uri, "two"]))
    # params of the wrong type, written as raw JSON-RPC (the client would refuse to send them)
    from concurrent.futures import Future
    fut: Future = Future()
    client.protocol._request_futures["bad-1"] = fut
    client.protocol._result_types["bad-1"] = None
    client.protocol._send_data({"jsonrpc": "2.0", "id": "bad-1", "method": types.TEXT_DOCUMENT_CODE_ACTION,
                                "params": {"textDocument": 5, "range": "nowhere"}})
    await wait_for(fut.done, 20)
    assert fut.exception() is not None and not isinstance(fut.exception(), TimeoutError)
    assert [a.title for a in await code_actions(client, uri, 2)] == ["Fix with model"]  # still alive
