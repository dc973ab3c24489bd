"""The backend's folders are its layers and every import points down; shared/ stays free of torch, bpy and backend."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BACKEND = REPO / "backend"

# Lower number = lower layer. A module may import its own folder and any folder of a lower rank, never a sibling
# folder of the same rank nor anything above. The package root (`backend/__init__.py`: `load_model`) counts as model.
LAYERS = {"model": 0, "tasks": 1, "service": 2, "train": 2, "eval": 2, "bench": 3, "cli": 4}


def layer_of(module: str) -> str | None:
    """'backend.service.server' -> 'service'; 'backend' (the package root) -> 'model'; None outside the backend."""
    parts = module.split(".")
    if parts[0] != "backend":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "model"


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source` (relative imports resolved against `module`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = package[: len(package) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def upward_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports of `module` that point up or sideways in the layer order (empty when the module obeys it)."""
    own = layer_of(module)
    assert own is not None
    wrong = []
    for line, name in imported_modules(source, module, is_package):
        target = layer_of(name)
        if target is None or target == own:
            continue
        if target in LAYERS and LAYERS[target] >= LAYERS[own]:
            wrong.append(f"{module}:{line} imports {name} ({target} is not below {own})")
    return wrong


def backend_modules() -> list[tuple[Path, str, bool]]:
    modules = []
    for path in sorted(BACKEND.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules.append((path, ".".join(parts), is_package))
    return modules


def test_every_backend_folder_is_a_known_layer() -> None:
    folders = {p.name for p in BACKEND.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS)


def test_no_backend_import_climbs_up() -> None:
    wrong = []
    for path, module, is_package in backend_modules():
        wrong += upward_imports(path.read_text(encoding="utf-8"), module, is_package)
    assert wrong == []


def test_the_check_catches_upward_and_sideways_imports() -> None:
    assert upward_imports("from backend.tasks import inference", "backend.model.motiongpt3")
    assert upward_imports("from ..service.server import Server", "backend.tasks.inference")
    assert upward_imports("import backend.eval.metrics", "backend.train.demo")  # a sibling of the same rank
    assert upward_imports("from backend import cli", "backend.bench.model")
    assert not upward_imports("from backend.model.config import EOS_ID", "backend.tasks.inference")
    assert not upward_imports("from .inference import text_to_motion", "backend.tasks", is_package=True)
    assert not upward_imports("from backend import load_model", "backend.eval.evaluate")


@pytest.mark.parametrize("folder", ["shared"])
def test_shared_imports_neither_torch_bpy_nor_the_backend(folder: str) -> None:
    wrong = []
    for path in sorted((REPO / folder).rglob("*.py")):
        for line, name in imported_modules(path.read_text(encoding="utf-8"), "shared.x", False):
            if name.split(".")[0] in {"torch", "bpy", "mathutils", "backend", "blender_addon", "transformers"}:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert wrong == []
