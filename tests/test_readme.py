"""The README's Python examples run as written."""
import re

import pytest


def _python_block(repo, marker: str) -> str:
    text = (repo / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if marker in b]
    assert len(blocks) == 1, f"expected one README python block containing {marker!r}, found {len(blocks)}"
    return blocks[0]


def test_pipeline_fit_on_a_datasets_dataset(repo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_python_block(repo, "datasets.Dataset.from_dict"), "README.md", "exec"), namespace)
    assert namespace["metrics"]["accuracy"] == pytest.approx(1.0)
    assert [p["label"] for p in namespace["pipe"](["loved it", "a dull mess"])] == ["1", "0"]
    assert "'label': '1'" in capsys.readouterr().out
