"""The structural budgets of the app code (run by ``make lint``; exit status 1 on a breach).

Over ``workflows_app/``, ``channels_app/`` and ``orchestrator/`` (migrations excepted):

- a module has at most 400 lines, a function at most 60;
- no function imports (except ``AppConfig.ready`` and system checks, where Django wants it);
- no single/batch twins: no ``step_X`` beside ``steps_X`` (a single step is a batch of one);
- no import cycle among the app's modules.

Usage: ``python scripts/check_budgets.py [root]``.
"""

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("workflows_app", "channels_app", "orchestrator")
MODULE_LINES = 400
FUNCTION_LINES = 60
# Where Django wants imports inside a function: the app registry is not ready at module level.
LOCAL_IMPORTS_ALLOWED = {"ready"}


def modules(root: Path) -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def size_breaches(path: Path, source: str, tree: ast.AST) -> list[str]:
    found = []
    lines = source.count("\n") + 1
    if lines > MODULE_LINES:
        found.append(f"{path}: {lines} lines (budget {MODULE_LINES})")
    for function in functions(tree):
        length = (function.end_lineno or function.lineno) - function.lineno + 1
        if length > FUNCTION_LINES:
            found.append(
                f"{path}:{function.lineno}: {function.name} has {length} lines "
                f"(budget {FUNCTION_LINES})"
            )
    return found


def local_imports(path: Path, tree: ast.AST) -> list[str]:
    found = []
    for function in functions(tree):
        if function.name in LOCAL_IMPORTS_ALLOWED:
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(f"{path}:{node.lineno}: an import inside {function.name}()")
    return found


def twins(names_by_package: dict[str, set[str]]) -> list[str]:
    found = []
    for package, names in sorted(names_by_package.items()):
        for name in sorted(names):
            if name.startswith("step_") and "steps_" + name.removeprefix("step_") in names:
                found.append(f"{package}: {name} beside steps_{name.removeprefix('step_')}")
    return found


def imported_modules(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The app modules ``name`` imports at module level (not inside functions)."""
    found = set()
    package = name if name in known and _is_package(name, known) else name.rpartition(".")[0]
    for node in tree.body:
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            if target in known and target != name:
                found.add(target)
    return found


def _is_package(name: str, known: set[str]) -> bool:
    return any(other.startswith(name + ".") for other in known)


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[str] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append("import cycle: " + " ↔ ".join(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(root: Path) -> int:
    breaches: list[str] = []
    trees: dict[str, ast.Module] = {}
    names_by_package: dict[str, set[str]] = {}
    for path in modules(root):
        source = path.read_text()
        tree = ast.parse(source, str(path))
        relative = path.relative_to(root)
        breaches += size_breaches(relative, source, tree)
        breaches += local_imports(relative, tree)
        trees[module_name(root, path)] = tree
        top = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        names_by_package.setdefault(relative.parts[0], set()).update(top)
    breaches += twins(names_by_package)
    known = set(trees)
    graph = {name: imported_modules(name, tree, known) for name, tree in trees.items()}
    breaches += cycles(graph)
    for breach in breaches:
        print(breach)
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()))
