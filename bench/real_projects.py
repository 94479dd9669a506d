"""Fix on real projects: seeded bugs in pure-Python libraries from PyPI, fixed by `coedit fix --apply`
against each library's own test suite, as a user would run it.

    python bench/real_projects.py                       # the recorded bugs (bench/real_projects_bugs.json)
    python bench/real_projects.py --inject [--seed 0]   # draw the bugs again and record them
    options: --proposers search,model (the default, what Fix runs) --libraries NAME,... --out DIR

Per library (a source distribution, from pip's cache or index; nothing else from the network):
1. Unpack it afresh under --out. Run its own suite once under pytest with `direct_calls.py`, which
   notes which collected test calls which library function directly (the check on test finding).
2. Bugs (with --inject; else read from the record): functions that 1..20 tests call directly, each
   given one single-line bug, deterministic from the seed, kept only if one of those tests then fails.
   Kinds: `search` (one of the engine's own single edits: an operator, a comparison, a constant, a
   bound), and three kinds the single-edit search does not produce, a third of all bugs:
   `dropped_line` (a statement line deleted), `changed_call` (a call's function replaced by another
   of the module's names that the function does not use), `two_tokens` (two edits on one line).
3. For each bug: write it, run `coedit fix FILE:LINE --apply --json`, then check with pytest that the
   tests calling the function pass on the file as coedit left it (a fix is counted only then), that
   a file not fixed is byte for byte the buggy one (else: damaged), that coedit's tests include
   every test calling the function directly; then restore the original.
Printed: one row per library and a total: bugs, fixed (search kinds / other kinds), median and p90
seconds of `coedit fix` (wall, the process included), test runs, share of warm checks, damaged
files, tests missed. Targets (issue 30): >= 60% fixed, median <= 10 s, 0 damaged, 0 missed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.libraries import NoSource, sdist, unpack  # noqa: E402
from bench.seeded_bugs import KINDS, draw_bugs  # noqa: E402

LIBRARIES = {  # name -> (version, modules bugs go into, test paths)
    "more-itertools": ("11.2.1", ["more_itertools/more.py", "more_itertools/recipes.py"], ["tests"]),
    "toolz": ("1.0.0", ["toolz/itertoolz.py", "toolz/dicttoolz.py", "toolz/functoolz.py"], ["toolz/tests"]),
    "inflection": ("0.5.1", ["inflection/__init__.py"], ["test_inflection.py"]),
}
BUGS = ROOT / "bench" / "real_projects_bugs.json"
PY = sys.executable


def direct_calls(lib: Path, modules: list[str], tests: list[str], out: Path) -> dict[str, list[str]]:
    """{"file:name:first_line": node ids} from the library's own suite (bench/direct_calls.py)."""
    env = {**os.environ, "COEDIT_DIRECT_CALLS": str(out), "PYTHONPATH": str(ROOT / "bench"),
           "COEDIT_DIRECT_FILES": ":".join(str(lib / m) for m in modules)}
    t0 = time.monotonic()
    subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "direct_calls", "--doctest-modules",
                    *tests, *modules], cwd=lib, env=env, capture_output=True, text=True)
    print(f"  {lib.name}: the suite's direct calls in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    return {k.replace(str(lib) + "/", ""): v for k, v in json.loads(out.read_text()).items()}


def pytest_passes(lib: Path, node_ids: list[str], doctest: bool, timeout: float = 120) -> bool | None:
    """Whether the tests pass; None if they ran past `timeout` or 4 GiB (a seeded bug can loop)."""
    args = [PY, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *(["--doctest-modules"] if doctest else []),
            *node_ids]
    try:
        return subprocess.run(args, cwd=lib, capture_output=True, timeout=timeout, preexec_fn=_memory_limit,
                              start_new_session=True).returncode == 0
    except subprocess.TimeoutExpired:
        return None


def _memory_limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def run_bug(lib: Path, bug: dict, calls: dict, proposers: str, out: Path) -> dict:
    path = lib / bug["file"]
    original = path.read_text(encoding="utf-8")
    lines = original.splitlines(keepends=True)
    start = bug["def_line"] - 1
    assert "".join(lines[start: start + len(bug["before"])]) == "".join(bug["before"]), f"{bug['id']}: source moved"
    buggy = "".join(lines[:start] + bug["after"] + lines[start + len(bug["before"]):])
    path.write_text(buggy, encoding="utf-8")
    report = out / (bug["id"].replace("/", "_").replace(":", "_") + ".json")
    try:
        t0 = time.monotonic()
        proc = subprocess.run([str(Path(PY).with_name("coedit")), "fix", f"{path}:{bug['def_line']}", "--apply", "--json",
                               str(report), "--proposers", proposers, "--root", str(lib)],
                              cwd=lib, capture_output=True, text=True, timeout=300)
        wall = time.monotonic() - t0
        got = json.loads(report.read_text()) if report.exists() else {"status": "crashed", "tests": []}
        after = path.read_text(encoding="utf-8")
        expected = calls[bug["key"]]
        doctest = any(t.split("::")[0] == bug["file"] for t in expected)
        verified = got.get("applied") and pytest_passes(lib, expected, doctest)
        found = {t.split("[")[0] for t in got.get("tests", [])}
        missed = sorted({t.split("[")[0] for t in expected} - found)
        return {"id": bug["id"], "kind": bug["kind"], "fixed": bool(verified), "claimed": got.get("status"),
                "fixed_by": got.get("fixed_by", ""), "seconds": round(wall, 2), "test_runs": got.get("test_runs", 0),
                "checks": got.get("checks", 0), "warm_checks": got.get("warm_checks", 0), "tests": got.get("tests", []),
                "missed": missed, "damaged": (not got.get("applied") and after != buggy) or
                (bool(got.get("applied")) and not _only_inside(buggy, after, bug)),
                "exit": proc.returncode, "stderr": proc.stderr[-400:] if got["status"] == "crashed" else ""}
    finally:
        path.write_text(original, encoding="utf-8")


def _only_inside(buggy: str, after: str, bug: dict) -> bool:
    """Whether coedit changed nothing outside the function it was pointed at."""
    a, b = buggy.splitlines(), after.splitlines()
    start, tail = bug["def_line"] - 1, len(a) - (bug["def_line"] - 1) - len(bug["after"])
    return len(b) >= start + tail and a[:start] == b[:start] and (tail == 0 or a[-tail:] == b[-tail:])


def table(rows: list[dict], name: str) -> str:
    n = max(1, len(rows))
    fixed = [r for r in rows if r["fixed"]]
    search = [r for r in rows if r["kind"] == "search"]
    other = [r for r in rows if r["kind"] != "search"]
    secs = sorted(r["seconds"] for r in fixed)
    med = statistics.median(secs) if secs else float("nan")
    p90 = secs[min(len(secs) - 1, int(0.9 * len(secs)))] if secs else float("nan")
    checks = sum(r["checks"] for r in rows)
    warm = sum(r["warm_checks"] for r in rows) / checks if checks else 0.0
    return (f"| {name} | {n} | {len(fixed)} ({len(fixed) / n:.0%}) | {sum(r['fixed'] for r in search)}/{len(search)} | "
            f"{sum(r['fixed'] for r in other)}/{len(other)} | {med:.1f} | {p90:.1f} | "
            f"{statistics.median(r['test_runs'] for r in rows):.0f} | {warm:.0%} | "
            f"{sum(r['damaged'] for r in rows)} | {sum(len(r['missed']) for r in rows)} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inject", action="store_true", help="draw the bugs again (and record them in --bugs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-library", type=int, default=9)
    ap.add_argument("--bugs", type=Path, default=BUGS)
    ap.add_argument("--libraries", default=",".join(LIBRARIES))
    ap.add_argument("--proposers", default="search,model")
    ap.add_argument("--only", default="", help="run only the bugs whose id contains this")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "real_projects", help="results")
    # outside this repository: pytest would take our pyproject.toml's settings for a library without its own
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "coedit-real-projects",
                    help="where the libraries are unpacked")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    recorded = json.loads(args.bugs.read_text()) if args.bugs.exists() and not args.inject else {}
    rows_all, lines = [], []
    for name in args.libraries.split(","):
        version, modules, tests = LIBRARIES[name]
        try:
            lib = unpack(sdist(name, version), args.work / name)
        except NoSource as e:
            sys.exit(str(e))
        calls = direct_calls(lib, modules, tests, args.out / f"{name}-direct-calls.json")
        if args.inject:
            recorded[name] = draw_bugs(lib, modules, calls, args.per_library, random.Random(f"{args.seed}:{name}"),
                                       lambda ids, doc: pytest_passes(lib, ids, doc, timeout=20) is False)
            args.bugs.write_text(json.dumps(recorded, indent=1) + "\n")
        rows = []
        for bug in [b for b in recorded[name] if args.only in b["id"]]:
            row = run_bug(lib, bug, calls, args.proposers, args.out)
            print(f"  {bug['id']:<40} {bug['kind']:<13} {'fixed' if row['fixed'] else row['claimed']:<10} "
                  f"{row['seconds']:5.1f}s runs={row['test_runs']} {row['fixed_by']}", file=sys.stderr)
            rows.append(row)
        rows_all += rows
        lines.append(table(rows, f"{name} {version}"))
    (args.out / "results.json").write_text(json.dumps(rows_all, indent=1) + "\n")
    print(f"\ncoedit fix --apply --proposers {args.proposers}, {len(rows_all)} seeded bugs; seconds: wall of the "
          "command, over the fixed bugs\n")
    print("| library | bugs | fixed | search kinds | other kinds | median s | p90 s | median runs | warm checks "
          "| damaged | tests missed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines + [table(rows_all, "**all**")]))
    assert set(KINDS) >= {r["kind"] for r in rows_all}
    return 0


if __name__ == "__main__":
    sys.exit(main())
