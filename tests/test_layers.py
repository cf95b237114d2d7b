"""The layering contract: imports only point down, pipelines -> models -> featurestore.

featurestore imports neither models nor pipelines; models never import pipelines. Every import
counts, also one inside a function and a module named in ``importlib.import_module("...")``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("featurestore", "models", "pipelines")  # bottom to top
FORBIDDEN = {"featurestore": ("models", "pipelines"), "models": ("pipelines",)}


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in ``source``, importlib string imports included."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module.split(".")[0]))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr))):
            arg = node.args[0]
            text = arg.value if isinstance(arg, ast.Constant) else "".join(
                v.value for v in arg.values if isinstance(v, ast.Constant))
            out.append((node.lineno, str(text).split(".")[0]))
    return out


def violations(root: Path) -> list[str]:
    """``file:line: layer imports package`` for every import that points up or sideways-up."""
    found = []
    for layer, banned in FORBIDDEN.items():
        for path in sorted((root / layer).rglob("*.py")):
            for line, pkg in imported_packages(path.read_text()):
                if pkg in banned:
                    found.append(f"{path.relative_to(root)}:{line}: {layer} imports {pkg}")
    return found


def test_imports_only_point_down():
    assert violations(ROOT) == []


@pytest.mark.parametrize("layer, line", [
    ("featurestore", "from models.metrics import spearman"),
    ("featurestore", "import pipelines.runner"),
    ("models", "def f():\n    from pipelines.paths import Paths\n"),
    ("featurestore", "import importlib\nm = importlib.import_module(f'pipelines.{name}')"),
])
def test_a_forbidden_import_is_caught(tmp_path, layer, line):
    for name in LAYERS:
        (tmp_path / name).mkdir()
    (tmp_path / layer / "bad.py").write_text(line + "\n")
    assert [v.split(":")[0] for v in violations(tmp_path)] == [f"{layer}/bad.py"]


def test_allowed_imports_pass(tmp_path):
    for name in LAYERS:
        (tmp_path / name).mkdir()
    (tmp_path / "models" / "ok.py").write_text("from featurestore.paths import Paths\nimport numpy\n")
    (tmp_path / "pipelines" / "ok.py").write_text("from models.metrics import spearman\nimport featurestore\n")
    assert violations(tmp_path) == []


def test_analysis_and_sql_commands_do_not_import_torch():
    """`smpp sql`, `similar` and `errors` load no deep-learning stack (torch is for the models)."""
    import subprocess
    import sys

    code = ("import sys; import pipelines.cli, pipelines.analysis.similar, pipelines.analysis.error_report, "
            "featurestore.sql_guard; print(sorted(m for m in ('torch', 'catboost', 'sentence_transformers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
