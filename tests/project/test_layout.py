"""The package's shape: no import circle, and loading a config stays light (no SB3, no agents)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Where each installed package lives in the repository (pyproject's package-dir).
PACKAGES = {"rlimm": ROOT / "rlimm", "rlimm.agents": ROOT / "agents", "rlimm.envs": ROOT / "envs"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "rlimm" and parts and parts[0] in ("agents", "envs"):
                continue
            found[name] = path
    return found


def _top_level_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """rlimm modules imported when ``path`` is imported (statements at module level, not in
    functions); ``from package import module`` counts as importing that module."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                for a in node.names
            ]
        out |= {n for n in names if n in modules}
    return out


def test_no_import_circle():
    modules = _modules()
    graph = {m: _top_level_imports(p, modules) for m, p in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " → ".join(stack[stack.index(n) :] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert "rlimm.rl.config" in graph and "rlimm.agents.imm.regularizer" in graph  # the walk saw the tree


def test_loading_a_config_imports_neither_sb3_nor_the_agents():
    code = (
        "import sys\n"
        "from rlimm.rl.config import load_compare_config, load_train_config\n"
        f"config = load_compare_config({str(ROOT / 'configs' / 'grid_quick.yaml')!r})\n"
        "config.runs()\n"
        f"load_train_config({str(ROOT / 'configs' / 'train_grid_imm.yaml')!r})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('stable_baselines3', 'torch')"
        " or m in ('rlimm.agents.ppo', 'rlimm.agents.a2c', 'rlimm.agents.reinforce', 'rlimm.rl.runs',"
        " 'rlimm.rl.environments', 'rlimm.rl.teacher_builder'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_imm_regulariser_imports_no_sb3():
    """rlimm.agents.imm is the regulariser's maths: importing all of it loads no stable-baselines3."""
    code = (
        "import sys\n"
        "import rlimm.agents.imm.draws, rlimm.agents.imm.families, rlimm.agents.imm.regularizer\n"
        "import rlimm.agents.imm.settings\n"
        "print('stable_baselines3' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout
