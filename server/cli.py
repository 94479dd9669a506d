"""The `coedit` command.

    coedit fix FILE[:LINE] [--test PATH] [--model PATH] [--k K] [--apply]
    coedit serve                      the language server on stdio (= python -m server)
    coedit check|verify|play|demo ... the dsl tool (see python -m dsl --help)

`coedit fix` runs the same job as the editor's "Fix with model" (the repair engine: edit search
and the model under one budget): the function at LINE (1-based), or without LINE the first
function of FILE whose tests fail; it prints what was tried and the unified diff, and with --apply
writes FILE, only when the tests then pass.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import json
import sys
from pathlib import Path

from .options import Options


def _functions(source: str) -> list[int]:
    """0-based `def` lines of the file's functions and methods, in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [i for i, line in enumerate(source.splitlines()) if line.lstrip().startswith(("def ", "async def "))]
    return sorted(n.lineno - 1 for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))


def cmd_fix(args: argparse.Namespace) -> int:
    from .fix import ModelCache, run_fix
    spec = args.file
    file, _, line = spec.rpartition(":") if spec.rpartition(":")[2].isdigit() else (spec, "", "")
    path = Path(file).resolve()
    if not path.is_file():
        print(f"coedit: no such file: {file}", file=sys.stderr)
        return 2
    source = path.read_text(encoding="utf-8")
    root = Path(args.root).resolve() if args.root else _project_root(path)
    if args.redraws < 0:
        print("coedit: --redraws must be 0 or more", file=sys.stderr)
        return 2
    opts = Options(model=args.model or "", k=args.k, max_turns=args.max_turns, tests=args.test or [],
                   timeout=args.timeout, python=args.python or "", warm=not args.fresh_pytest, redraws=args.redraws,
                   runs=args.runs, seconds=args.seconds, proposers=args.proposers.split(","))
    if args.runs < 1 or args.seconds <= 0 or not set(opts.proposers) <= {"search", "model", "lines", "episodes"}:
        print("coedit: --runs and --seconds must be positive; --proposers takes search, model, lines, episodes",
              file=sys.stderr)
        return 2
    models = ModelCache()

    def event(text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    lines = [int(line) - 1] if line else _functions(source)
    outcome = None
    try:
        for n in lines:  # without LINE: skip functions that pass or have no tests
            outcome = run_fix(path, source, n, root, opts, models, on_event=event)
            if line or not (outcome.status == "already_passing" or outcome.message.startswith("no tests found")):
                break
    finally:
        models.close()  # the model's process goes with the command
    if outcome is None:
        print("coedit: no function in the file", file=sys.stderr)
        return 1
    if outcome.report:
        print(outcome.report)
    print(outcome.message, file=sys.stderr)
    applied = False
    try:
        if outcome.new_source is None:
            return 0 if outcome.status == "already_passing" else 1
        sys.stdout.writelines(difflib.unified_diff(source.splitlines(keepends=True),
                                                   outcome.new_source.splitlines(keepends=True),
                                                   f"a/{path.name}", f"b/{path.name}"))
        if args.apply:
            if path.read_text(encoding="utf-8") != source:
                print("coedit: the file changed while the fix ran; not written", file=sys.stderr)
                return 1
            path.write_text(outcome.new_source, encoding="utf-8")
            applied = True
            print(f"coedit: wrote {path}", file=sys.stderr)
        return 0
    finally:
        if args.json:
            _write_json(args.json, path, outcome, applied)


def _write_json(out: str, path: Path, outcome, applied: bool) -> None:
    """The outcome for scripts (bench/real_projects.py reads it)."""
    r = outcome.result
    data = {"file": str(path), "status": outcome.status, "message": outcome.message, "applied": applied,
            "tests": outcome.tests, "checks": outcome.checks,
            "warm_checks": outcome.warm_checks, "fixed_by": r.proposer if r and r.status == "fixed" else "",
            "test_runs": r.runs if r else 0, "seconds": r.seconds if r else 0.0,
            "runs_to_fix": r.at.get("runs") if r else None, "seconds_to_fix": r.at.get("seconds") if r else None,
            "commands": r.commands if r and r.status == "fixed" else []}
    Path(out).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _project_root(path: Path) -> Path:
    """The nearest folder above FILE that looks like a project, else the current folder if it
    holds FILE, else FILE's folder."""
    for d in [path.parent, *path.parents]:
        if any((d / m).exists() for m in ("pyproject.toml", "setup.py", "setup.cfg", ".git", "pytest.ini", "tox.ini")):
            return d
    cwd = Path.cwd().resolve()
    return cwd if cwd in path.parents else path.parent


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("check", "verify", "play", "demo"):
        from dsl.__main__ import main as dsl_main
        return dsl_main(argv)
    if argv and argv[0] == "serve":
        from .server import start
        start()
        return 0
    p = argparse.ArgumentParser(prog="coedit", description="Offline 'Fix with model' for Python.")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fix", help="fix the function at FILE:LINE (or the first failing one) with the model")
    f.add_argument("file", metavar="FILE[:LINE]")
    f.add_argument("--test", action="append", help="a test file or file::test to judge by (repeatable)")
    f.add_argument("--model", help="a .gguf file or checkpoint directory (default: the shipped model)")
    f.add_argument("--runs", type=int, default=Options().runs, help=f"test runs per fix (default {Options().runs})")
    f.add_argument("--seconds", type=float, default=Options().seconds,
                   help=f"seconds per fix (default {Options().seconds:g})")
    f.add_argument("--proposers", default="search,model",
                   help="who proposes edits: search, model (= lines, episodes) (default search,model)")
    f.add_argument("--k", type=int, default=Options.k, help=f"model episodes at most (default {Options.k})")
    f.add_argument("--max-turns", type=int, default=10)
    f.add_argument("--redraws", type=int, default=Options().redraws,
                   help="draw again a command that would bring back code the episode had, up to N times "
                        f"(default {Options().redraws})")
    f.add_argument("--timeout", type=float, default=30.0, help="seconds per test run")
    f.add_argument("--python", help="the project's interpreter (default: its .venv, else this one)")
    f.add_argument("--fresh-pytest", action="store_true",
                   help="start pytest afresh for every check instead of one warm session (slower; for comparison)")
    f.add_argument("--root", help="the project root (default: found from FILE)")
    f.add_argument("--apply", action="store_true", help="write FILE when the tests pass")
    f.add_argument("--json", metavar="OUT", help="also write the outcome as JSON to OUT (for scripts)")
    sub.add_parser("serve", help="the language server on stdio")
    for name in ("check", "verify", "play", "demo"):
        sub.add_parser(name, help=f"the dsl tool's {name} (coedit {name} --help)")
    args = p.parse_args(argv)
    return cmd_fix(args)


if __name__ == "__main__":
    sys.exit(main())
