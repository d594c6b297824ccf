"""The import order of the package (docs/internals.md): a module imports only from its own layer or
the layers below it, and packages of one layer never import each other in a cycle. Parsed from the
source with `ast`, so a lazy import inside a function counts as much as one at the top."""
import ast
import itertools
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "speechvae_jax"

# Bottom to top. The first component of a module path below speechvae_jax names its room.
LAYERS = [
    {"constants", "fileio"},
    {"dsp", "data"},
    {"corpus"},
    {"models", "losses", "teachers"},
    {"engine"},
    {"presets", "train", "pretrain"},
    {"inference"},
    {"export"},
    {"generate"},
    {"evaluate"},
    {"study"},
    {"cli", "bench", "__main__", "__init__"},
]
LEVEL = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def _room(relative: pathlib.Path) -> str:
    return relative.parts[0].removesuffix(".py")


def _imports(path: pathlib.Path, package: pathlib.Path = PACKAGE) -> set[str]:
    """Rooms of speechvae_jax that the file (inside `package`) imports, absolutely or relatively."""
    out = set()
    package_parts = path.relative_to(package.parent).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                names = [".".join(base + ((node.module,) if node.module else ()))]
            else:
                names = [node.module or ""]
            if names[0] == "speechvae_jax":  # `from speechvae_jax import corpus`
                names = [f"speechvae_jax.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "speechvae_jax" and len(parts) > 1:
                out.add(parts[1])
    return out


def _graph() -> dict[str, dict[str, list[str]]]:
    """{room: {imported room: [files]}} over every module of the package."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        room = _room(rel)
        for target in _imports(path):
            if target != room:
                graph.setdefault(room, {}).setdefault(target, []).append(str(rel))
    return graph


def test_every_room_has_a_layer():
    rooms = {_room(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")}
    assert rooms <= set(LEVEL), f"rooms without a layer: {sorted(rooms - set(LEVEL))}"


def test_imports_point_down():
    upward = [f"{f}: {room} (layer {LEVEL[room]}) imports {target} (layer {LEVEL[target]})"
              for room, targets in _graph().items() for target, files in targets.items()
              for f in files if LEVEL[target] > LEVEL[room]]
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_no_cycles_within_a_layer():
    graph = _graph()
    cycles = [(a, b) for rooms in LAYERS for a, b in itertools.combinations(sorted(rooms), 2)
              if b in graph.get(a, {}) and a in graph.get(b, {})]
    assert not cycles, f"rooms of one layer importing each other: {cycles}"


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    probe = tmp_path / "speechvae_jax" / "models" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("import numpy\n\ndef f():\n    from speechvae_jax.train import loop\n"
                     "    from ..export import writer\n    from . import layers\n")
    assert _imports(probe, tmp_path / "speechvae_jax") == {"train", "export", "models"}
