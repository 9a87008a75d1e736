"""docs/export.md's Python example runs as written."""
import re


def test_export_page_example_runs(repo, tmp_path, monkeypatch, capsys):
    text = (repo / "docs" / "export.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "docs/export.md", "exec"), {})
    assert "'label'" in capsys.readouterr().out
    assert (tmp_path / "runs" / "bow-sentiment-onnx" / "network.onnx").is_file()
