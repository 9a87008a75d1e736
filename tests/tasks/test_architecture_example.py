"""docs/architecture.md's worked example runs: the task module, then the code that uses it."""
from __future__ import annotations

import re
import sys

from seqlab.core import registry
from tests.conftest import REPO


def test_worked_example_of_a_new_task(tmp_path, monkeypatch, capsys):
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2, "the worked example is two python blocks: the task module and its use"
    (tmp_path / "bow_task.py").write_text(blocks[0], encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "TASKS", dict(registry.TASKS))  # the example's register() stays in this test
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(blocks[1], "docs/architecture.md", "exec"), {"__name__": "architecture_example"})
    finally:
        sys.modules.pop("bow_task", None)
    assert "unknown option 'topp' (did you mean 'top'?); valid options: top, batch_size" in capsys.readouterr().out
    assert (tmp_path / "runs" / "bow" / "config.json").is_file()
