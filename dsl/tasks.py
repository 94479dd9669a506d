"""Tasks: a piece of code and the tests that judge it, and loaders for the files we use.

Task file format (JSONL, one object per line):
    {"id": str, "code": str, "tests": str, "entry_point"?: str, "description"?: str, "timeout_s"?: number}
A task passes when `code + "\\n\\n" + tests` runs without raising (see `verifier.py` for how tests
are counted). `../shared/bench/quixbugs.jsonl` is in this format.

MBPP (`../shared/data/mbpp.jsonl`) loads into the same `Task`: code = `code_normalized`,
tests = `test_setup_code` + the `test_list` asserts, description = `text`, split kept.
Train on `train` + `validation` only; `test` (tasks 11-510) is for evaluation.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

MBPP_SPLITS = ("prompt", "test", "validation", "train")


@dataclass(frozen=True)
class Task:
    id: str
    code: str
    tests: str
    entry_point: str | None = None
    description: str | None = None
    timeout_s: float | None = None
    split: str | None = None  # MBPP split, when the task comes from MBPP

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, ensure_ascii=False)


class TaskFileError(ValueError):
    pass


def shared_dir() -> Path:
    """`shared/` beside the checkout (as on CI), or $COEDIT_SHARED."""
    env = os.environ.get("COEDIT_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def load_tasks(path: str | os.PathLike) -> list[Task]:
    """Read a task JSONL file; a bad line raises TaskFileError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(f"{path}: no such file")
    tasks: list[Task] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TaskFileError(f"{path}:{n}: not JSON ({e.msg})") from None
            if "task_id" in row and "test_list" in row:  # an MBPP row: same file, other shape
                task = _mbpp_task(row)
            else:
                task = _task_from_row(row, f"{path}:{n}")
            if task.id in seen:
                raise TaskFileError(f"{path}:{n}: duplicate id {task.id!r}")
            seen.add(task.id)
            tasks.append(task)
    return tasks


def _task_from_row(row: object, where: str) -> Task:
    if not isinstance(row, dict):
        raise TaskFileError(f"{where}: expected a JSON object")
    missing = [k for k in ("id", "code", "tests") if not isinstance(row.get(k), str)]
    if missing:
        raise TaskFileError(f"{where}: missing or non-string field(s): {', '.join(missing)}")
    timeout = row.get("timeout_s")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise TaskFileError(f"{where}: timeout_s must be a positive number")
    return Task(row["id"], row["code"], row["tests"], row.get("entry_point"), row.get("description"),
                float(timeout) if timeout is not None else None, row.get("split"))


def _mbpp_task(row: dict) -> Task:
    asserts = "\n".join(_normalize(a) for a in row["test_list"])
    setup = _normalize(row.get("test_setup_code", "")).strip()
    tests = f"{setup}\n{asserts}" if setup else asserts
    m = re.search(r"assert\s+(?:not\s+)?\(?\s*(?:set\()?\s*([A-Za-z_]\w*)\s*\(", row["test_list"][0])
    code = row.get("code_normalized") or _normalize(row["code"])
    return Task(f"mbpp/{row['task_id']}", code, tests, m.group(1) if m else None, row["text"], None, row.get("split"))


def _normalize(text: str) -> str:
    """As the data's `code_normalized`: LF line ends, no trailing whitespace; tabs kept."""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))


def load_mbpp(splits: Iterable[str] = ("test",), path: str | os.PathLike | None = None) -> list[Task]:
    """MBPP tasks of the given splits, in task-id order."""
    splits = tuple(splits)
    bad = [s for s in splits if s not in MBPP_SPLITS]
    if bad:
        raise TaskFileError(f"unknown MBPP split(s) {bad}; choose from {MBPP_SPLITS}")
    path = Path(path) if path else shared_dir() / "data" / "mbpp.jsonl"
    return [t for t in load_tasks(path) if t.split in splits]


def write_tasks(path: str | os.PathLike, tasks: Iterable[Task]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for t in tasks:
            f.write(t.to_json() + "\n")
            n += 1
    return n
