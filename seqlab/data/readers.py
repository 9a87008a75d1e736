"""Corpus readers: files on disk → ``datasets.Dataset`` with seqlab's column names.

One reader per file layout the tasks use:

- :func:`read_tsv` — delimited text with a header (SST-2: ``sentence<TAB>label``);
- :func:`read_conll` — the CoNLL column format (Tjong Kim Sang & De Meulder, 2003): one
  token per line, fields separated by white space, a blank line between sentences,
  ``-DOCSTART-`` lines between documents → columns ``tokens`` and ``tags``;
- :func:`read_parallel` — two line-aligned files (Multi30k ``train.en`` / ``train.de``);
- :func:`read_text` — plain text, one example per line or per blank-line-separated block;
- :func:`load_hub_dataset` — the same columns from the Hugging Face hub, for users online.

Every reader decodes line by line, so a byte that is not UTF-8, a line with the wrong
number of fields, or an empty file fails with a ``DataError`` naming the file *and* the
line — not a ``UnicodeDecodeError`` from somewhere inside Arrow.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seqlab.core.errors import ConfigError, DataError

DOCSTART = "-DOCSTART-"


# -- line access -----------------------------------------------------------------------
def _check_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} {str(path)!r} does not exist (no such file)")
    if not path.is_file():
        raise DataError(f"{what} {str(path)!r} is not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{what} {str(path)!r} is empty")
    return path


def iter_lines(path: str | Path, what: str = "file") -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` for every line, without its line ending; non-UTF-8 → DataError.

    A UTF-8 byte-order mark at the start is dropped. Only ``\\n`` (and ``\\r\\n``) end a line:
    other Unicode separators (U+2028, form feed …) stay inside the text.
    """
    path = _check_file(path, what)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{str(path)!r} line {number}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                    f"{err.start + 1}); convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8"
                ) from None


def _dataset(columns: dict[str, list], source: str) -> Any:
    import datasets

    try:
        return datasets.Dataset.from_dict(columns)
    except Exception as err:  # Arrow type inference failures and the like
        raise DataError(f"{source}: cannot build a dataset from the columns {list(columns)}: {err}") from None


# -- TSV / CSV ----------------------------------------------------------------------------
def read_tsv(
    path: str | Path,
    columns: list[str] | None = None,
    delimiter: str = "\t",
    header: bool = True,
) -> Any:
    """Read delimited text into a ``datasets.Dataset`` of string columns.

    With ``header`` the first line names the columns, and ``columns`` (if given) selects
    and orders some of them; without a header ``columns`` names the fields (default
    ``column_0``, ``column_1`` …). Every row must have as many fields as the first.
    Quoting is honoured only for ``delimiter=","`` (CSV); tab-separated files are split
    literally, since their text (SST-2's) holds unbalanced quote characters. Empty lines
    are skipped. Values stay strings: convert them (or let ``LabelEncoder`` compare them as
    strings) afterwards.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.tsv")
    >>> _ = open(path, "w").write('sentence\\tlabel\\nit \\'s " good\\t1\\n')
    >>> read_tsv(path)[0]
    {'sentence': 'it \\'s " good', 'label': '1'}
    """
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ConfigError(f"read_tsv: delimiter must be one character, got {delimiter!r}")
    path = Path(path)
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    numbered = [(n, line) for n, line in iter_lines(path, "TSV file") if line != ""]
    if not numbered:
        raise DataError(f"TSV file {str(path)!r} has only empty lines")
    reader = csv.reader((line for _, line in numbered), delimiter=delimiter, quoting=quoting, strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        for (number, _), fields in zip(numbered, reader):
            rows.append((number, fields))
    except csv.Error as err:
        raise DataError(f"{str(path)!r} line {numbered[len(rows)][0]}: {err}") from None
    if header:
        first_line, names = rows[0]
        rows = rows[1:]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise DataError(f"{str(path)!r} line {first_line}: the header repeats column name(s) {dup}")
        if not rows:
            raise DataError(f"TSV file {str(path)!r} has a header ({', '.join(names)}) but no rows")
    else:
        width = len(rows[0][1])
        names = list(columns) if columns is not None else [f"column_{i}" for i in range(width)]
        if len(names) != width:
            raise DataError(
                f"{str(path)!r} line {rows[0][0]}: {width} fields, but {len(names)} column names were given ({names})"
            )
    width = len(names)
    data: dict[str, list[str]] = {name: [] for name in names}
    for number, fields in rows:
        if len(fields) != width:
            raise DataError(
                f"{str(path)!r} line {number}: {len(fields)} field(s), expected {width} ({', '.join(names)}); "
                f"is a {'tab' if delimiter == chr(9) else repr(delimiter)} missing or extra?"
            )
        for name, value in zip(names, fields):
            data[name].append(value)
    if header and columns is not None:
        missing = [c for c in columns if c not in data]
        if missing:
            raise DataError(f"{str(path)!r}: no column(s) {missing}; the header has: {', '.join(names)}")
        data = {c: data[c] for c in columns}
    return _dataset(data, repr(str(path)))


# -- CoNLL ----------------------------------------------------------------------------
def read_conll(
    path: str | Path,
    tag_column: int = -1,
    token_column: int = 0,
    columns: dict[str, int] | None = None,
    keep_documents: bool = False,
    separator: str | None = None,
) -> Any:
    """Read a CoNLL column file: one sentence per example, columns ``tokens`` and ``tags``.

    ``token_column`` / ``tag_column`` pick the fields (negative counts from the end, so the
    default ``-1`` is the NER tag of CoNLL-2003's ``token POS chunk NER``); ``columns``
    adds more, e.g. ``{"pos": 1, "chunk": 2}``. ``-DOCSTART-`` lines are skipped; with
    ``keep_documents`` a ``document`` column gives each sentence's document number (0, 1, …).
    Fields are split on ``separator`` (default: any run of white space). A line with another
    number of fields than the file's first token line is a ``DataError`` naming the file and
    line.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.conll")
    >>> _ = open(path, "w").write("-DOCSTART- -X- O\\n\\nNorvik NNP B-ORG\\npraises VBZ O\\n\\nIlse NNP B-PER\\n")
    >>> ds = read_conll(path)
    >>> ds[:]["tokens"], ds[:]["tags"]
    ([['Norvik', 'praises'], ['Ilse']], [['B-ORG', 'O'], ['B-PER']])
    """
    path = Path(path)
    wanted = {"tokens": token_column, "tags": tag_column, **(columns or {})}
    for name, index in wanted.items():
        if isinstance(index, bool) or not isinstance(index, int):
            raise ConfigError(f"read_conll: column {name!r} must be a field number, got {index!r}")
    if keep_documents and "document" in wanted:
        raise ConfigError("read_conll: 'document' is both a requested column and the document-id column")
    data: dict[str, list] = {name: [] for name in wanted}
    if keep_documents:
        data["document"] = []
    sentence: dict[str, list[str]] = {name: [] for name in wanted}
    width: int | None = None
    width_line = 0
    document = -1  # before the first -DOCSTART- (files without one are a single document 0)
    any_line = False

    def flush() -> None:
        if sentence["tokens"]:
            for name in wanted:
                data[name].append(sentence[name])
                sentence[name] = []
            if keep_documents:
                data["document"].append(max(document, 0))

    for number, line in iter_lines(path, "CoNLL file"):
        any_line = True
        fields = line.split(separator) if separator is not None else line.split()
        if not fields or (separator is not None and not line.strip()):
            flush()
            continue
        if fields[0] == DOCSTART:
            flush()
            document += 1
            continue
        if width is None:
            width, width_line = len(fields), number
            for name, index in wanted.items():
                if not -width <= index < width:
                    raise DataError(
                        f"{str(path)!r} line {number}: column {name!r} is field {index}, but the lines have "
                        f"only {width} field(s)"
                    )
        elif len(fields) != width:
            raise DataError(
                f"{str(path)!r} line {number}: {len(fields)} field(s), but line {width_line} has {width}; "
                f"every token line must have the same columns (line: {line!r:.80})"
            )
        for name, index in wanted.items():
            sentence[name].append(fields[index])
    flush()
    if not any_line or not data["tokens"]:
        raise DataError(f"CoNLL file {str(path)!r} holds no sentences")
    return _dataset(data, repr(str(path)))


# -- parallel and plain text ---------------------------------------------------------------
def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def read_parallel(
    src_path: str | Path,
    tgt_path: str | Path,
    src_column: str = "source",
    tgt_column: str = "target",
    skip_empty: bool = False,
) -> Any:
    """Two line-aligned files → a dataset with one sentence pair per row.

    The files must have the same number of lines (else a ``DataError`` giving both counts).
    An empty line on either side is an error naming it, unless ``skip_empty`` drops such pairs.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "a.en"), "w").write("a dog\\ntwo cats\\n")
    >>> _ = open(os.path.join(d, "a.de"), "w").write("ein Hund\\nzwei Katzen\\n")
    >>> read_parallel(os.path.join(d, "a.en"), os.path.join(d, "a.de"))[1]
    {'source': 'two cats', 'target': 'zwei Katzen'}
    """
    if src_column == tgt_column:
        raise ConfigError(f"read_parallel: source and target column are both {src_column!r}")
    src_path, tgt_path = _check_file(src_path, "source file"), _check_file(tgt_path, "target file")
    n_src, n_tgt = _count_lines(src_path), _count_lines(tgt_path)
    if n_src != n_tgt:
        raise DataError(
            f"parallel files are not line-aligned: {str(src_path)!r} has {n_src} lines, "
            f"{str(tgt_path)!r} has {n_tgt} lines"
        )
    source, target = [], []
    for (number, src), (_, tgt) in zip(iter_lines(src_path, "source file"), iter_lines(tgt_path, "target file")):
        if not src.strip() or not tgt.strip():
            if skip_empty:
                continue
            side = src_path if not src.strip() else tgt_path
            raise DataError(
                f"{str(side)!r} line {number} is empty; its pair cannot be used (pass skip_empty=True to drop such pairs)"
            )
        source.append(src)
        target.append(tgt)
    if not source:
        raise DataError(f"parallel files {str(src_path)!r} / {str(tgt_path)!r} hold no sentence pairs")
    return _dataset({src_column: source, tgt_column: target}, repr(str(src_path)))


def read_text(path: str | Path, column: str = "text", documents: bool = False, skip_empty: bool = True) -> Any:
    """Plain text → one row per line, or with ``documents`` one row per blank-line-separated block.

    A document's lines are joined with ``\\n``. With ``skip_empty`` (default) blank lines are
    not rows of their own.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> _ = open(path, "w").write("one\\ntwo\\n\\nthree\\n")
    >>> read_text(path)[:]["text"], read_text(path, documents=True)[:]["text"]
    (['one', 'two', 'three'], ['one\\ntwo', 'three'])
    """
    rows: list[str] = []
    block: list[str] = []
    for _, line in iter_lines(path, "text file"):
        if documents:
            if line.strip():
                block.append(line)
            elif block:
                rows.append("\n".join(block))
                block = []
        elif line.strip() or not skip_empty:
            rows.append(line)
    if block:
        rows.append("\n".join(block))
    if not rows:
        raise DataError(f"text file {str(path)!r} holds only blank lines")
    return _dataset({column: rows}, repr(str(path)))


# -- the hub ------------------------------------------------------------------------------
#: Known hub datasets → how to map them onto seqlab's columns.
HUB_LAYOUTS: dict[str, dict[str, Any]] = {
    "conll2003": {"rename": {"ner_tags": "tags"}, "tag_feature": "ner_tags", "keep": ("tokens", "tags")},
    "eriktks/conll2003": {"rename": {"ner_tags": "tags"}, "tag_feature": "ner_tags", "keep": ("tokens", "tags")},
    "glue/sst2": {"args": ("glue", "sst2"), "keep": ("sentence", "label")},
    "stanfordnlp/sst2": {"keep": ("sentence", "label")},
    "sst2": {"args": ("stanfordnlp/sst2",), "keep": ("sentence", "label")},
    "bentrevett/multi30k": {"rename": {"en": "source", "de": "target"}, "keep": ("source", "target")},
    "multi30k": {"args": ("bentrevett/multi30k",), "rename": {"en": "source", "de": "target"}, "keep": ("source", "target")},
}


def load_hub_dataset(name: str, split: str = "train", **kwargs: Any) -> Any:
    """``datasets.load_dataset`` for users who are online, mapped to the readers' columns.

    Known names (``HUB_LAYOUTS``): ``conll2003`` (→ ``tokens``, ``tags`` as tag strings, like
    :func:`read_conll`), ``glue/sst2`` / ``stanfordnlp/sst2`` / ``sst2`` (→ ``sentence``,
    ``label``, like SST-2's ``train.tsv``), ``bentrevett/multi30k`` / ``multi30k`` (→
    ``source`` = English, ``target`` = German, like :func:`read_parallel`). Any other name
    is loaded as is. ``kwargs`` go to ``datasets.load_dataset``. Needs network access the
    first time (then the local ``datasets`` cache).
    """
    import datasets

    layout = HUB_LAYOUTS.get(name, {})
    args = layout.get("args", (name,))
    try:
        ds = datasets.load_dataset(*args, split=split, **kwargs)
    except Exception as err:
        offline = os.environ.get("HF_DATASETS_OFFLINE") or os.environ.get("HF_HUB_OFFLINE")
        hint = " (offline mode is set)" if offline else "; check the name, the split and the network"
        raise DataError(f"cannot load hub dataset {name!r} split {split!r}{hint}: {err}") from None
    tag_feature = layout.get("tag_feature")
    if tag_feature and tag_feature in ds.column_names:
        names = getattr(getattr(ds.features[tag_feature], "feature", None), "names", None)
        if names:  # integer class ids → the tag strings read_conll gives (a new column: the
            # old one's ClassLabel feature would turn the strings back into ids)
            target = layout["rename"].get(tag_feature, tag_feature)
            ds = ds.map(
                lambda b: {target: [[names[i] for i in row] for row in b[tag_feature]]},
                batched=True, remove_columns=[tag_feature],
            )
    for old, new in layout.get("rename", {}).items():
        if old in ds.column_names:
            ds = ds.rename_column(old, new)
    keep = layout.get("keep")
    if keep:
        ds = ds.remove_columns([c for c in ds.column_names if c not in keep])
    return ds
