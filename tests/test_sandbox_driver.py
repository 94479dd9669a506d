"""The fork server's cleanup between runs (`dsl/sandbox_driver.py: empty_dir`)."""
from __future__ import annotations

import importlib
import os
import sys


def _driver(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the driver puts its own folder first; undone after
    return importlib.import_module("dsl.sandbox_driver")


def test_empty_dir_removes_a_runs_files_but_does_not_walk_a_faked_mount_point(tmp_path, monkeypatch):
    """Inside the sandbox, paths that bubblewrap binds under /tmp (a checkout or virtualenv living
    there) are mount points; the cleanup must leave them unvisited, since walking a virtualenv
    after every run made runs 30x slower. Mounting needs privileges the test may lack, so which
    folder is a mount point is faked; the removal itself is real."""
    driver = _driver(monkeypatch)
    (tmp_path / "run" / "sub").mkdir(parents=True)
    (tmp_path / "run" / "sub" / "out.txt").write_text("left by a run")
    (tmp_path / "file.txt").write_text("x")
    os.symlink("/etc", tmp_path / "link")  # a link is unlinked, never followed
    bound = tmp_path / "checkout" / ".venv"
    (bound / "lib").mkdir(parents=True)
    (bound / "lib" / "torch.py").write_text("")
    visited = []
    real_listdir = os.listdir
    monkeypatch.setattr(driver.os, "listdir", lambda p: visited.append(str(p)) or real_listdir(p))
    monkeypatch.setattr(driver.os.path, "ismount", lambda p: str(p) == str(bound))
    driver.empty_dir(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkout"]  # only the mount's parent stays
    assert (bound / "lib" / "torch.py").exists() and os.path.isdir("/etc")
    assert not any(v.startswith(str(bound)) for v in visited)


def test_empty_dir_survives_nesting_deeper_than_the_recursion_limit(tmp_path, monkeypatch):
    """A run may leave folders nested deeper than Python's recursion limit (lowered here so the
    tree stays small); a recursive walk would die of RecursionError and leave them."""
    driver = _driver(monkeypatch)
    deep = tmp_path
    for _ in range(400):
        deep = deep / "d"
        os.mkdir(deep)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)
    try:
        driver.empty_dir(str(tmp_path))
    finally:
        sys.setrecursionlimit(limit)
    assert list(tmp_path.iterdir()) == []
