"""The house's rules, checked rather than remembered: the layer contracts (pyproject.toml's
[tool.importlinter], run by import-linter), no private name imported across packages, and no
source file over 400 lines."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dsl", "server", "trainer", "bench", "tests", "scripts", "editors")
SOURCES = (".py", ".lua", ".ts", ".sh")
MAX_LINES = 400
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def sources(root: Path = ROOT, suffixes=SOURCES) -> list[Path]:
    skip = {"node_modules", "__pycache__", "out", ".venv", ".cache"}
    return sorted(p for pkg in PACKAGES for p in (root / pkg).rglob("*")
                  if p.suffix in suffixes and p.is_file() and not skip & set(p.relative_to(root).parts))


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_layer_contracts_hold():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_the_layer_contracts_catch_an_upward_import_a_function_level_cycle_and_torch_in_dsl(tmp_path):
    """The contracts have teeth: a copy of the packages with one violation of each kind fails."""
    for pkg in ("dsl", "server", "trainer"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    assert lint_imports(tmp_path).returncode == 0
    (tmp_path / "dsl" / "upward.py").write_text("def f():\n    from server import fix\n")
    (tmp_path / "server" / "cycle_a.py").write_text("from . import cycle_b\n")
    (tmp_path / "server" / "cycle_b.py").write_text("def f():\n    from . import cycle_a\n")
    (tmp_path / "dsl" / "heavy.py").write_text("import torch\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "0 kept, 3 broken" in done.stdout, done.stdout[-3000:]


def private_imports(where: str, text: str) -> list[str]:
    """`from pkg.mod import _name` (or `import pkg._mod`) in `text`, the file at `where` (relative
    to the checkout), where pkg is another top-level package than the file's own: a private name
    used across packages."""
    own = Path(where).parts[0]
    found = []
    for node in ast.walk(ast.parse(text, where)):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules, names = [node.module], [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            modules, names = [a.name for a in node.names], []
        else:
            continue
        for module in modules:
            if module.split(".")[0] not in PACKAGES or module.split(".")[0] == own:
                continue
            private = [p for p in module.split(".") + names if p.startswith("_") and not p.startswith("__")]
            if private:
                found.append(f"{where}:{node.lineno}: {module}: {', '.join(private)}")
    return found


def test_no_private_name_is_imported_across_packages():
    found = [hit for p in sources(suffixes=(".py",))
             for hit in private_imports(str(p.relative_to(ROOT)), p.read_text())]
    assert not found, "private names imported from another package:\n" + "\n".join(found)


def test_the_private_name_check_catches_one_and_lets_a_package_use_its_own():
    text = ("from server.backends.transformers import _x\nimport trainer._hidden\nfrom dsl import run_episode\n"
            "from trainer.data import _seed\n")
    assert [h.split(": ")[1] for h in private_imports("tests/probe.py", text)] == [
        "server.backends.transformers", "trainer._hidden", "trainer.data"]
    assert [h.split(": ")[1] for h in private_imports("trainer/probe.py", text)] == ["server.backends.transformers"]


def test_no_source_file_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in sources() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines (split them by concern): {long}"
