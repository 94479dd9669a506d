"""Real libraries for the benches and tests: their source distributions, and the search's edits of
one of their functions. Shared by bench/real_projects.py, bench/workspace_check_speed.py and
tests/test_real_library.py.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

from dsl import EditorState
from dsl.mutate import mutations

SDISTS = Path(__file__).resolve().parents[1] / "runs" / "sdists"  # git-ignored


class NoSource(RuntimeError):
    pass


def sdist(name: str, version: str, cache: Path = SDISTS) -> Path:
    """The library's source distribution: pip's cache or index (no other network), kept in `cache`."""
    cache.mkdir(parents=True, exist_ok=True)

    def found() -> Path | None:
        return next((p for p in cache.glob("*.tar.gz")
                     if p.name.lower().replace("_", "-").startswith(f"{name}-{version}.tar")), None)
    if found() is None:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            f"{name}=={version}", "-d", str(cache), "-q"], capture_output=True, text=True)
        if found() is None:
            raise NoSource(f"cannot get the source of {name}=={version} through pip: {r.stderr.strip()[-300:]}")
    return found()


def unpack(archive: Path, dest: Path) -> Path:
    """`archive` unpacked afresh into `dest`; the library's top folder."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    (top,) = list(dest.iterdir())
    return top


def parses(source: str) -> bool:
    try:
        ast.parse(source)
        return True
    except SyntaxError:
        return False


def code_edits(target, source: str, n: int) -> list[str]:
    """The function (a `server.target.Target` in `source`) and up to `n` of the search's single
    edits of its code, not of its docstring, each leaving the file parseable."""
    codes = [target.code]
    fn = ast.parse(textwrap.dedent(target.code)).body[0]
    body = fn.body[1:] if ast.get_docstring(fn) else fn.body
    for m in mutations(target.code, list(range(body[0].lineno, fn.end_lineno + 1))):
        if len(codes) > n:
            break
        new = EditorState.from_code(target.code).apply(m.command)
        if isinstance(new, EditorState) and new.to_code() not in codes and parses(target.splice(source, new.to_code())):
            codes.append(new.to_code())
    return codes
