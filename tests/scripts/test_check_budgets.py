"""scripts/check_budgets.py finds each kind of breach, and passes this repository."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "check_budgets", ROOT / "scripts" / "check_budgets.py"
)
assert spec is not None and spec.loader is not None
check_budgets = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_budgets)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in check_budgets.PACKAGES:
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    return tmp_path


def test_it_reports_twins_function_imports_cycles_and_sizes(tmp_path, capsys):
    long_body = "\n".join(f"    x{i} = {i}" for i in range(61))
    root = _tree(
        tmp_path,
        {
            "workflows_app/a.py": "from workflows_app import b\n\n\ndef step_send(): ...\n",
            "workflows_app/b.py": "from workflows_app import a\n\n\ndef steps_send(): ...\n",
            "channels_app/c.py": "def f():\n    import json\n" + long_body + "\n",
            "orchestrator/big.py": "x = 1\n" * 401,
        },
    )
    assert check_budgets.main(root) == 1
    out = capsys.readouterr().out
    assert "step_send beside steps_send" in out
    assert "an import inside f()" in out
    assert "import cycle: workflows_app.a ↔ workflows_app.b" in out
    assert "f has 63 lines" in out
    assert "big.py: 402 lines" in out


def test_a_clean_tree_passes(tmp_path, capsys):
    root = _tree(tmp_path, {"workflows_app/a.py": "def steps_send(): ...\n"})
    assert check_budgets.main(root) == 0
    assert capsys.readouterr().out == ""
