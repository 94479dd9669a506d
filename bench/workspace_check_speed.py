"""A candidate check in a real project: the warm workspace runner against a fresh pytest run of the
same node ids, side by side in one run (issue 30's goal: >= 10x).

    python bench/workspace_check_speed.py [--checks 10]

The case is the issue's: more-itertools 11.2.1 (source distribution via pip's cache or index), with
first()'s `if default is _marker:` flipped to `is not`; its tests as `coedit fix` finds them (the
four FirstTests methods and the doctest). Each candidate is one of the search's single edits of
first()'s code (not its docstring or signature, which go to pytest afresh by design), the same list
for both paths; every answer of the two is compared (they must agree).
Printed: seconds per check (median, p90) for each path, the warm runner's start (once per Fix), and
the ratio of the medians.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.libraries import code_edits, sdist, unpack  # noqa: E402
from server.discovery import discover  # noqa: E402
from server.target import find_target  # noqa: E402
from server.workspace_check import WorkspaceCheck  # noqa: E402

LINE = 272  # `if default is _marker:` in first()
ADDRESS = re.compile(r"0x[0-9a-f]+")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checks", type=int, default=10)
    args = ap.parse_args()
    lib = unpack(sdist("more-itertools", "11.2.1"),
                 Path(tempfile.gettempdir()) / "coedit-check-speed")
    path = lib / "more_itertools" / "more.py"
    lines = path.read_text().splitlines(keepends=True)
    lines[LINE - 1] = lines[LINE - 1].replace(" is _marker", " is not _marker")
    source = "".join(lines)
    path.write_text(source)
    target = find_target(source, LINE - 1)
    tests = discover(lib, path, target)
    codes = code_edits(target, source, args.checks - 1)
    times: dict[str, list[float]] = {"fresh": [], "warm": []}
    answers: dict[str, list] = {"fresh": [], "warm": []}
    startup = 0.0
    for name in ("warm", "fresh"):
        check = WorkspaceCheck(lib, path, source, target, tests, sys.executable, warm=name == "warm")
        try:
            for i, code in enumerate(codes):
                t0 = time.perf_counter()
                r = check(code)
                dt = time.perf_counter() - t0
                if name == "warm" and i == 0:
                    startup = dt  # the runner's start and the first check (with coverage)
                else:
                    times[name].append(dt)
                answers[name].append((r.passed, r.tests_passed, r.tests_total, r.feedback))
            if name == "warm":
                assert check.warm_checks == len(codes), f"only {check.warm_checks} of {len(codes)} checks were warm"
        finally:
            check.close()
    times["fresh"] = times["fresh"][1:]  # the first check of each path is not a candidate's
    # object addresses (`<object object at 0x7f...>`) differ between any two processes
    same = [ADDRESS.sub("0x…", repr(a)) == ADDRESS.sub("0x…", repr(b)) for a, b in zip(answers["warm"], answers["fresh"])]
    agree = sum(same)
    for code, a, b, ok in zip(codes, answers["warm"], answers["fresh"], same):
        if not ok:
            print(f"the two paths disagree on\n{code}\nwarm:  {a}\nfresh: {b}", file=sys.stderr)

    def row(name: str) -> str:
        xs = sorted(times[name])
        return f"| {name} | {len(xs)} | {statistics.median(xs):.3f} | {xs[int(0.9 * (len(xs) - 1))]:.3f} |"
    print(f"\nmore-itertools 11.2.1, first() with `is not` flipped in; {len(tests.node_ids)} tests per check; "
          f"{len(codes)} candidates (the search's single edits), the same for both paths\n")
    print("| path | checks | median s | p90 s |\n|---|---|---|---|")
    print(row("fresh"))
    print(row("warm"))
    ratio = statistics.median(times["fresh"]) / statistics.median(times["warm"])
    print(f"\nwarm start + first check (with per-test coverage): {startup:.2f} s, once per Fix")
    print(f"warm is {ratio:.1f}x faster per check (median); answers identical (up to object addresses) for "
          f"{agree}/{len(codes)} candidates")
    return 0 if agree == len(codes) else 1


if __name__ == "__main__":
    sys.exit(main())
