"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_every_config_the_readme_names_exists():
    names = set(re.findall(r"configs/([\w.-]+\.yaml)", README.read_text()))
    assert names
    missing = sorted(n for n in names if not (README.parent / "configs" / n).is_file())
    assert not missing, missing
