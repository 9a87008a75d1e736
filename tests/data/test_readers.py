"""Readers: TSV, CoNLL, parallel and plain text → datasets, with errors naming file and line."""
import pytest

from seqlab.core.errors import ConfigError, DataError
from seqlab.data.readers import read_conll, read_parallel, read_text, read_tsv


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


# -- TSV ----------------------------------------------------------------------------------
def test_tsv_with_header_keeps_quotes_literally(tmp_path):
    path = write(tmp_path / "t.tsv", 'sentence\tlabel\nit \'s a " quote \t1\n"quoted start\t0\n\n')
    ds = read_tsv(path)
    assert ds.column_names == ["sentence", "label"]
    assert ds[:]["sentence"] == ['it \'s a " quote ', '"quoted start']
    assert ds[:]["label"] == ["1", "0"]
    assert read_tsv(path, columns=["label"]).column_names == ["label"]
    with pytest.raises(DataError, match="no column"):
        read_tsv(path, columns=["text"])


def test_tsv_without_header_and_csv_quoting(tmp_path):
    path = write(tmp_path / "t.tsv", "a\tb\nc\td\n")
    assert read_tsv(path, header=False)[:] == {"column_0": ["a", "c"], "column_1": ["b", "d"]}
    assert read_tsv(path, header=False, columns=["x", "y"])[0] == {"x": "a", "y": "b"}
    csv_path = write(tmp_path / "t.csv", 'text,label\n"a, b",1\n')
    assert read_tsv(csv_path, delimiter=",")[0] == {"text": "a, b", "label": "1"}


def test_tsv_field_count_mismatch_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.tsv", "sentence\tlabel\nok\t1\nmissing label\n")
    with pytest.raises(DataError, match=r"bad\.tsv' line 3: 1 field"):
        read_tsv(path)


def test_tsv_bad_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_tsv(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match="empty"):
        read_tsv(write(tmp_path / "empty.tsv", ""))
    with pytest.raises(DataError, match="no rows"):
        read_tsv(write(tmp_path / "head.tsv", "sentence\tlabel\n"))
    latin = write(tmp_path / "latin.tsv", "sentence\tlabel\ncaf\xe9\t1\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"latin\.tsv' line 2: not valid UTF-8"):
        read_tsv(latin)
    with pytest.raises(ConfigError):
        read_tsv(latin, delimiter="\t\t")


# -- CoNLL --------------------------------------------------------------------------------
CONLL = """-DOCSTART- -X- -X- O

Norvik NNP B-NP B-ORG
praises VBZ B-VP O
Danish JJ B-NP B-MISC
plan NN I-NP O
. . O O

Ilse NNP B-NP B-PER
Vandermeer NNP I-NP I-PER

-DOCSTART- -X- -X- O

LYON NNP B-NP B-LOC
2024-03-11 CD I-NP O
"""


def test_conll_counts_docstart_and_columns(tmp_path):
    path = write(tmp_path / "train.txt", CONLL)
    ds = read_conll(path)
    assert len(ds) == 3
    assert sum(len(t) for t in ds[:]["tokens"]) == 9
    assert ds[0] == {"tokens": ["Norvik", "praises", "Danish", "plan", "."], "tags": ["B-ORG", "O", "B-MISC", "O", "O"]}
    assert ds[2]["tags"] == ["B-LOC", "O"]
    pos = read_conll(path, tag_column=1, columns={"chunk": 2}, keep_documents=True)
    assert pos[1] == {"tokens": ["Ilse", "Vandermeer"], "tags": ["NNP", "NNP"], "chunk": ["B-NP", "I-NP"], "document": 0}
    assert pos[:]["document"] == [0, 0, 1]


def test_conll_without_docstart_or_final_blank_line(tmp_path):
    path = write(tmp_path / "t.conll", "a O\nb B-X\n\n\n\nc O")
    ds = read_conll(path, keep_documents=True)
    assert ds[:]["tokens"] == [["a", "b"], ["c"]] and ds[:]["document"] == [0, 0]


def test_conll_inconsistent_columns_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.conll", "Norvik NNP B-ORG\npraises O\n")
    with pytest.raises(DataError, match=r"bad\.conll' line 2: 2 field.*line 1 has 3"):
        read_conll(path)
    with pytest.raises(DataError, match="field 7"):
        read_conll(write(tmp_path / "ok.conll", "a b\n"), tag_column=7)


def test_conll_bad_bytes_and_empty(tmp_path):
    with pytest.raises(DataError, match=r"line 2: not valid UTF-8"):
        read_conll(write(tmp_path / "l.conll", b"a O\n\xff\xfe O\n"))
    with pytest.raises(DataError, match="no sentences"):
        read_conll(write(tmp_path / "d.conll", "-DOCSTART- -X- O\n\n"))


# -- parallel and plain text ----------------------------------------------------------------
def test_parallel_reads_pairs(tmp_path):
    src = write(tmp_path / "train.en", "A dog runs.\nTwo cats.\n")
    tgt = write(tmp_path / "train.de", "Ein Hund rennt.\nZwei Katzen.\n")
    ds = read_parallel(src, tgt)
    assert ds[:] == {"source": ["A dog runs.", "Two cats."], "target": ["Ein Hund rennt.", "Zwei Katzen."]}
    assert read_parallel(src, tgt, "en", "de").column_names == ["en", "de"]


def test_parallel_mismatch_reports_both_counts(tmp_path):
    src = write(tmp_path / "a.en", "one\ntwo\nthree\n")
    tgt = write(tmp_path / "a.de", "eins\nzwei\n")
    with pytest.raises(DataError, match=r"a\.en' has 3 lines.*a\.de' has 2 lines"):
        read_parallel(src, tgt)


def test_parallel_empty_line_is_named_or_skipped(tmp_path):
    src = write(tmp_path / "a.en", "one\n\nthree\n")
    tgt = write(tmp_path / "a.de", "eins\nzwei\ndrei\n")
    with pytest.raises(DataError, match=r"a\.en' line 2 is empty"):
        read_parallel(src, tgt)
    assert read_parallel(src, tgt, skip_empty=True)[:]["target"] == ["eins", "drei"]


def test_read_text_lines_and_documents(tmp_path):
    path = write(tmp_path / "t.txt", "\ufeffone\r\ntwo\r\n\r\n\r\nthree\n")
    assert read_text(path)[:]["text"] == ["one", "two", "three"]
    assert read_text(path, documents=True)[:]["text"] == ["one\ntwo", "three"]
    assert read_text(path, skip_empty=False)[:]["text"] == ["one", "two", "", "", "three"]
    with pytest.raises(DataError, match="only blank"):
        read_text(write(tmp_path / "b.txt", "\n\n"))


# -- the hub (offline: datasets.load_dataset replaced by a fake) --------------------------------
def test_load_hub_dataset_maps_conll2003_and_multi30k_columns(monkeypatch):
    import datasets

    from seqlab.data.readers import load_hub_dataset

    calls = []

    def fake_load_dataset(*args, split=None, **kwargs):
        calls.append((args, split))
        if args[0] == "eriktks/conll2003":
            features = datasets.Features({
                "id": datasets.Value("string"),
                "tokens": datasets.Sequence(datasets.Value("string")),
                "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
            })
            return datasets.Dataset.from_dict(
                {"id": ["0"], "tokens": [["Ilse", "Vandermeer", "ran"]], "ner_tags": [[1, 2, 0]]}, features=features
            )
        return datasets.Dataset.from_dict({"en": ["A dog."], "de": ["Ein Hund."]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ner = load_hub_dataset("eriktks/conll2003", split="validation")
    assert ner[0] == {"tokens": ["Ilse", "Vandermeer", "ran"], "tags": ["B-PER", "I-PER", "O"]}
    m30k = load_hub_dataset("multi30k")
    assert m30k[0] == {"source": "A dog.", "target": "Ein Hund."}
    assert calls == [(("eriktks/conll2003",), "validation"), (("bentrevett/multi30k",), "train")]


def test_load_hub_dataset_failure_is_a_data_error(monkeypatch):
    import datasets

    from seqlab.data.readers import load_hub_dataset

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="cannot load hub dataset 'glue/sst2'.*no network"):
        load_hub_dataset("glue/sst2")
