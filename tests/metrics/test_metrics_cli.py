"""``seqlab eval wer|cer|bleu|chrf|ner``: values equal the libraries', JSON/details output, one-line errors."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import jiwer
import pytest
import sacrebleu
from seqeval.metrics import f1_score

from seqlab.metrics.cli import METRIC_COMMANDS, run_metric_command

REFS = ["the cat sat on the mat", "a dog ran home", "", "hello world"]
HYPS = ["the cat sat on a mat", "a dog ran", "oh no", "hello world"]

GOLD = """-DOCSTART- -X- O

Norvik B-ORG
praises O
Danish B-MISC
plan O

Ilse B-PER
Vandermeer I-PER

LYON B-LOC
"""
PRED = """-DOCSTART- -X- O

Norvik B-ORG
praises O
Danish B-MISC
plan O

Ilse B-PER
Vandermeer B-PER

LYON B-ORG
"""


@pytest.fixture
def run(monkeypatch, capsys):
    """run(argv, stdin=b"") -> (exit status, stdout, stderr)."""

    def _run(argv: list[str], stdin: bytes = b""):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        status = run_metric_command([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    return _run


def _write(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    ref = _write(tmp_path / "ref.txt", REFS)
    hyp = _write(tmp_path / "hyp.txt", HYPS)
    gold = tmp_path / "gold.conll"
    gold.write_text(GOLD, encoding="utf-8")
    pred = tmp_path / "pred.conll"
    pred.write_text(PRED, encoding="utf-8")
    return {"ref": ref, "hyp": hyp, "gold": gold, "pred": pred, "dir": tmp_path}


def _one_error_line(status: int, out: str, err: str) -> str:
    assert status == 2 and out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("seqlab eval: ")
    return err


def test_metric_names():
    assert METRIC_COMMANDS == ("wer", "cer", "bleu", "chrf", "ner")


@pytest.mark.parametrize("metric, reference", [("wer", jiwer.wer), ("cer", jiwer.cer)])
def test_error_rates_from_files_and_stdin(metric, reference, run, files):
    status, out, err = run([metric, files["ref"], files["hyp"], "--json"])
    assert status == 0 and err == ""
    data = json.loads(out)
    assert data["metric"] == metric and data["utterances"] == 4 and data["normalize"] == "none"
    assert data["score"] == pytest.approx(reference(REFS, HYPS), abs=1e-12)
    words = jiwer.process_words(REFS, HYPS) if metric == "wer" else jiwer.process_characters(REFS, HYPS)
    assert (data["hits"], data["substitutions"], data["deletions"], data["insertions"]) == (
        words.hits, words.substitutions, words.deletions, words.insertions)
    # stdin for either side gives the same numbers
    assert json.loads(run([metric, "-", files["hyp"], "--json"], files["ref"].read_bytes())[1]) == data
    assert json.loads(run([metric, files["ref"], "-", "--json"], files["hyp"].read_bytes())[1]) == data
    # the human table carries the same value
    status, out, _ = run([metric, files["ref"], files["hyp"]])
    assert status == 0
    first = out.splitlines()[0].split()
    assert first == [metric.upper(), f"{reference(REFS, HYPS):.4f}"]
    assert "substitutions" in out and "insertions" in out


def test_wer_normalize_standard(run, tmp_path):
    ref = _write(tmp_path / "r.txt", ["Hello, World!", "It's me."])
    hyp = _write(tmp_path / "h.txt", ["hello world", "its me"])
    assert json.loads(run(["wer", ref, hyp, "--json"])[1])["score"] == pytest.approx(jiwer.wer(
        ["Hello, World!", "It's me."], ["hello world", "its me"]))
    data = json.loads(run(["wer", ref, hyp, "--json", "--normalize", "standard"])[1])
    assert data["score"] == 0.0 and data["normalize"] == "standard"


def test_wer_details(run, files):
    status, out, _ = run(["wer", files["ref"], files["hyp"], "--details"])
    assert status == 0
    assert "=== line 1: WER 0.1667 (S=1 D=0 I=0) ===" in out
    assert "REF: the cat sat on the mat\nHYP: the cat sat on   a mat\n" in out  # jiwer's picture
    assert "=== line 4: WER 0.0000" in out  # correct utterances are listed too
    data = json.loads(run(["wer", files["ref"], files["hyp"], "--details", "--json"])[1])
    details = data["details"]
    assert [d["line"] for d in details] == [1, 2, 3, 4]
    assert details[2]["reference"] == "" and details[2]["insertions"] == 2 and details[2]["score"] == 2.0
    for key in ("hits", "substitutions", "deletions", "insertions"):
        assert sum(d[key] for d in details) == data[key]
    assert details[1]["alignment"].startswith("REF: a dog ran home\nHYP: a dog ran ****\n")


def test_cer_details_use_character_alignment(run, files):
    data = json.loads(run(["cer", files["ref"], files["hyp"], "--details", "--json"])[1])
    assert data["details"][1]["deletions"] == 5  # " home"
    assert data["details"][0]["alignment"].startswith("REF: the cat sat on the mat")


def test_bleu_and_chrf_single_and_multiple_references(run, files, tmp_path):
    ref2 = _write(tmp_path / "ref2.txt", ["the cat is on a mat", "a dog ran", "oh", "hello there world"])
    for metric, corpus in (("bleu", sacrebleu.corpus_bleu), ("chrf", sacrebleu.corpus_chrf)):
        data = json.loads(run([metric, files["ref"], files["hyp"], "--json"])[1])
        expected = corpus(HYPS, [REFS])
        assert data["score"] == pytest.approx(expected.score, abs=1e-9)
        assert data["signature"].startswith("nrefs:1|") and data["references"] == 1 and data["sentences"] == 4
        two = json.loads(run([metric, files["ref"], ref2, files["hyp"], "--json"])[1])
        two_refs = [REFS, ref2.read_text(encoding="utf-8").splitlines()]
        assert two["score"] == pytest.approx(corpus(HYPS, two_refs).score, abs=1e-9)
        assert two["signature"].startswith("nrefs:2|") and two["references"] == 2
        # the hypotheses from stdin
        assert json.loads(run([metric, files["ref"], ref2, "-", "--json"], files["hyp"].read_bytes())[1]) == two
    status, out, _ = run(["bleu", files["ref"], files["hyp"]])
    assert status == 0 and "signature  nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0" in out
    assert out.splitlines()[0].split()[0] == "BLEU"
    lower = json.loads(run(["bleu", files["ref"], files["hyp"], "--json", "--lowercase", "--tokenize", "char"])[1])
    assert lower["signature"].startswith("nrefs:1|case:lc|eff:no|tok:char|")
    plus = json.loads(run(["chrf", files["ref"], files["hyp"], "--json", "--word-order", "2"])[1])
    assert plus["name"] == "chrF2++"
    assert plus["score"] == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS], word_order=2).score, abs=1e-9)


def _tags(text: str) -> list[list[str]]:
    sentences, tags = [], []
    for line in text.split("\n"):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if tags:
                sentences.append(tags)
            tags = []
        else:
            tags.append(cols[-1])
    return sentences + ([tags] if tags else [])


def test_ner_conll_files(run, files):
    status, out, err = run(["ner", files["gold"], files["pred"], "--json"])
    assert status == 0 and err == ""
    data = json.loads(out)
    expected = f1_score(_tags(GOLD), _tags(PRED))
    assert data["f1"] == pytest.approx(expected, abs=1e-12) and data["score"] == data["f1"]
    assert (data["support"], data["predicted"], data["correct"], data["sentences"]) == (4, 5, 2, 3)
    assert "per_type" not in data
    detailed = json.loads(run(["ner", files["gold"], files["pred"], "--json", "--details"])[1])
    assert detailed["per_type"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1,
                                           "predicted": 2, "correct": 0}
    status, out, _ = run(["ner", files["gold"], files["pred"], "--details"])
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:3] == ["entity", "F1,", "mode"]
    assert [r[0] for r in rows[1:]] == ["type", "LOC", "MISC", "ORG", "PER", "micro"]
    assert rows[-1][3] == f"{expected:.4f}"
    # predictions through stdin; strict mode with a scheme
    strict = json.loads(run(["ner", files["gold"], "-", "--json", "--mode", "strict", "--scheme", "IOB2"],
                            files["pred"].read_bytes())[1])
    assert strict["mode"] == "strict" and strict["scheme"] == "IOB2"
    assert strict["f1"] == pytest.approx(f1_score(_tags(GOLD), _tags(PRED)), abs=1e-12)  # valid IOB2: same


def test_ner_tag_only_prediction_file_and_crlf(run, files, tmp_path):
    pred = tmp_path / "tags_only.txt"
    lines = [line.split()[-1] if line.split() else "" for line in PRED.split("\n")[1:]]  # no -DOCSTART-
    pred.write_bytes("\r\n".join(lines).encode())
    status, out, err = run(["ner", files["gold"], pred, "--json"])
    assert status == 0, err
    assert json.loads(out)["correct"] == 2


def test_help_exits_zero(run):
    status, out, err = run(["wer", "--help"])
    assert status == 0 and "--normalize" in out


def test_module_runs_as_a_script(files):
    proc = subprocess.run([sys.executable, "-m", "seqlab.metrics.cli", "wer", "-", str(files["hyp"])],
                          input=files["ref"].read_bytes(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().split()[:2] == ["WER", f"{jiwer.wer(REFS, HYPS):.4f}"]


# -- every bad input gives one line on stderr and status 2 ----------------------------------------
def test_line_count_mismatch(run, files, tmp_path):
    short = _write(tmp_path / "short.txt", HYPS[:3])
    err = _one_error_line(*run(["wer", files["ref"], short]))
    assert "REF has 4 lines, HYP has 3" in err and "ref.txt" in err and "short.txt" in err
    err = _one_error_line(*run(["bleu", files["ref"], short, files["hyp"]]))
    assert "REF2 has 3 lines, HYP has 4" in err


def test_missing_file(run, files, monkeypatch):
    monkeypatch.chdir(files["dir"])
    assert run(["wer", "ref.txt", "missing.txt"])[2] == "seqlab eval: HYP file 'missing.txt' does not exist\n"
    err = _one_error_line(*run(["cer", files["dir"] / "nope.txt", files["hyp"]]))
    assert "REF file" in err and "nope.txt' does not exist" in err
    err = _one_error_line(*run(["ner", files["gold"], files["dir"] / "nope.conll"]))
    assert "PRED file" in err and "does not exist" in err
    err = _one_error_line(*run(["wer", files["dir"], files["hyp"]]))
    assert "is a directory" in err


def test_non_utf8_input_names_file_offset_and_line(run, files, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("ok\nstill ok\nMüller\n".encode("latin-1"))
    err = _one_error_line(*run(["wer", files["ref"], bad]))
    assert err == (f"seqlab eval: HYP file '{bad}' is not UTF-8 text: byte 0xfc at byte offset 13 (line 3) "
                   "cannot be decoded\n")
    err = _one_error_line(*run(["wer", "-", files["hyp"]], b"caf\xe9\n"))
    assert "REF (standard input) is not UTF-8 text: byte 0xe9 at byte offset 3 (line 1)" in err


def test_empty_input(run, files, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    err = _one_error_line(*run(["wer", empty, files["hyp"]]))
    assert err == f"seqlab eval: REF file '{empty}' is empty\n"
    err = _one_error_line(*run(["chrf", files["ref"], "-"], b""))
    assert "HYP (standard input) is empty" in err
    only_docstart = tmp_path / "doc.conll"
    only_docstart.write_text("-DOCSTART- -X- O\n\n", encoding="utf-8")
    err = _one_error_line(*run(["ner", only_docstart, files["pred"]]))
    assert "holds no tagged tokens" in err


def test_invalid_tags_in_strict_mode(run, files, tmp_path):
    gold = tmp_path / "bad_gold.conll"
    gold.write_text(GOLD.replace("Ilse B-PER", "Peter I-PER"), encoding="utf-8")
    err = _one_error_line(*run(["ner", gold, files["pred"], "--mode", "strict"]))
    assert err.startswith(f"seqlab eval: GOLD '{gold}' line 8 (sentence 2, token 1): tag 'I-PER' at the start "
                          "of the sentence is not part of any valid IOB2 entity")
    # the same file is fine in the default (conlleval) mode
    assert run(["ner", gold, files["pred"]])[0] == 0
    pred = tmp_path / "iobes_pred.conll"
    pred.write_text(PRED.replace("LYON B-ORG", "LYON S-ORG"), encoding="utf-8")
    err = _one_error_line(*run(["ner", files["gold"], pred, "--mode", "strict", "--scheme", "IOB2"]))
    assert "PRED" in err and "line 11 (sentence 3, token 1): tag 'S-ORG'" in err
    assert run(["ner", files["gold"], pred, "--mode", "strict", "--scheme", "IOBES"])[0] == 2  # B-PER w/o E-


def test_ner_alignment_errors(run, files, tmp_path):
    fewer = tmp_path / "fewer.conll"
    fewer.write_text(PRED.rsplit("\n\n", 1)[0] + "\n", encoding="utf-8")
    err = _one_error_line(*run(["ner", files["gold"], fewer]))
    assert "GOLD has 3 sentences, PRED has 2" in err
    shorter = tmp_path / "shorter.conll"
    shorter.write_text(PRED.replace("plan O\n", ""), encoding="utf-8")
    err = _one_error_line(*run(["ner", files["gold"], shorter]))
    assert "sentence 1 has 4 tokens in GOLD (line 3) but 3 in PRED (line 3)" in err


@pytest.mark.parametrize("argv, message", [
    (["wer", "-", "-"], "only one input may be '-' (standard input)"),
    (["ner", "-", "-"], "only one input may be '-' (standard input)"),
    (["bleu", "ref.txt"], "bleu needs at least one REF file and the HYP file"),
    (["wer", "ref.txt"], "the following arguments are required: HYP"),
    (["meteor", "a", "b"], "invalid choice: 'meteor'"),
    (["wer", "a", "b", "--normalize", "lower"], "invalid choice: 'lower'"),
    (["ner", "a", "b", "--scheme", "IOB2"], "--scheme IOB2 applies only with --mode strict"),
    ([], "the following arguments are required: METRIC"),
    (["chrf", "a", "b", "--word-order", "-1"], "word_order must be an integer >= 0"),
])
def test_usage_errors(argv, message, run, files, monkeypatch):
    monkeypatch.chdir(files["dir"])
    err = _one_error_line(*run(argv))
    assert message in err
