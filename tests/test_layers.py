"""The import rules of docs/how-it-works.md, read from the source: no circle, nothing imports upward.

Every import counts, the ones inside functions too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module may import its own layer and the ones before it, never a later one.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("contract", ("voicekit.errors", "voicekit.contract", "voicekit.text.ssml")),
    ("engines", ("voicekit.engines",)),
    ("text", ("voicekit.text",)),
    ("audio", ("voicekit.buffer", "voicekit.resample", "voicekit.sinks")),
    ("core", ("voicekit.config", "voicekit.reply", "voicekit.playback", "voicekit.worker", "voicekit.finish",
              "voicekit.stream", "voicekit.async_stream", "voicekit.tts", "voicekit.tts_classes", "voicekit.testing",
              "voicekit")),  # fmt: skip
    ("registry", ("voicekit.registry",)),
    ("apps", ("voicekit.responder", "voicekit.backends", "voicekit.chat", "voicekit.server", "voicekit.adapters", "voicekit.cli",
              "voicekit.__main__")),  # fmt: skip
]
# Apps sit side by side on the library: none reaches into another (the CLI starts them all).
APPS_APART = {"voicekit.server": ("voicekit.cli", "voicekit.chat"), "voicekit.chat": ("voicekit.cli", "voicekit.server")}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in (("voicekit", ROOT / "voicekit"), ("voicekit.adapters", ROOT / "adapters")):
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The voicekit modules ``name`` imports, each as the longest module name that exists."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            wanted = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join([*package[: len(package) - node.level + 1], *([node.module] if node.module else [])]) \
                if node.level else (node.module or "")  # fmt: skip
            wanted = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in wanted:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
    return targets


def _layer(name: str) -> int:
    best = (-1, -1)  # (length of the matching prefix, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), index)
    assert best[1] >= 0, f"{name} is in no layer: add it to LAYERS and to docs/how-it-works.md"
    return best[1]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_import_circle(graph):
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")


def test_nothing_imports_a_later_layer(graph):
    upward = [
        f"{name} ({LAYERS[_layer(name)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        for name, targets in sorted(graph.items())
        for target in sorted(targets)
        if _layer(target) > _layer(name)
    ]
    assert not upward, "\n".join(upward)


def test_engines_import_only_the_contract(graph):
    # engines.transfer is the engines' own helper (threads and event loops for network SDKs),
    # engines.onnx_runs the onnxruntime engines' (Piper's and Kokoro's runs, turns and word timing)
    allowed = set(LAYERS[0][1]) | {"voicekit.engines", "voicekit.engines.transfer", "voicekit.engines.onnx_runs"}
    wrong = [f"{name} imports {target}" for name, targets in sorted(graph.items()) if name.startswith("voicekit.engines.")
             for target in sorted(targets) if target not in allowed]  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_apps_do_not_reach_into_each_other(graph):
    wrong = [
        f"{name} imports {target}"
        for name, targets in sorted(graph.items())
        for app, others in APPS_APART.items()
        if name == app or name.startswith(app + ".")
        for target in sorted(targets)
        if any(target == other or target.startswith(other + ".") for other in others)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_rules_see_every_import(graph):
    # the reader itself: a relative import, a lazy one and an absolute one are all found
    assert "voicekit.stream" in graph["voicekit.async_stream"]
    assert "voicekit.contract" in graph["voicekit.engines.piper"]
    assert graph["voicekit.__main__"] >= {"voicekit.cli"}
