"""``seqlab eval <metric> …``: score text files with WER, CER, BLEU, chrF or entity F1.

    seqlab eval wer  REF HYP            [--normalize none|standard] [--details] [--json]
    seqlab eval cer  REF HYP            [--normalize none|standard] [--details] [--json]
    seqlab eval bleu REF [REF ...] HYP  [--tokenize 13a|intl|char|none|zh] [--lowercase] [--json]
    seqlab eval chrf REF [REF ...] HYP  [--word-order N] [--lowercase] [--json]
    seqlab eval ner  GOLD PRED          [--mode default|strict] [--scheme IOB2|…] [--details] [--json]

Text files hold one utterance/sentence per line (UTF-8; ``\\n`` or ``\\r\\n``), aligned line
by line; for ``bleu``/``chrf`` every file but the last is a reference set. ``ner`` reads
CoNLL files: one token per line, the tag in the last column, blank lines between
sentences, ``-DOCSTART-`` lines skipped. Any one input may be ``-`` (standard input).

The lead's ``seqlab/cli.py`` calls ``run_metric_command(argv)`` with the words after
``eval``; ``python -m seqlab.metrics.cli …`` does the same. Exit status 0 on success; on
bad input one line on stderr, starting ``seqlab eval:``, and status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

from ..core.errors import SeqlabError

#: The metric names ``seqlab eval`` dispatches to this module.
METRIC_COMMANDS = ("wer", "cer", "bleu", "chrf", "ner")
PREFIX = "seqlab eval: "


class _BadInput(Exception):
    """Bad input from the user: reported as one ``seqlab eval:`` line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    # argparse would print the usage and a message over several lines and exit; we want one
    # line and a return code, so usage errors become _BadInput.
    def error(self, message: str) -> NoReturn:
        raise _BadInput(f"{message} (see '{self.prog} --help')")


# -- reading inputs ---------------------------------------------------------------------------
def _read_text(path: str, label: str, stdin: Any) -> tuple[str, str]:
    """(display name, decoded text) of a file or ``-``; every failure is one clear line."""
    if path == "-":
        name, where = "<stdin>", f"{label} (standard input)"
        if stdin is None:
            raise _BadInput(f"{where}: this process has no standard input")
        buffer = getattr(stdin, "buffer", None)
        data = buffer.read() if buffer is not None else stdin.read().encode("utf-8")
    else:
        name, where = path, f"{label} file {path!r}"
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise _BadInput(f"{where} does not exist") from None
        except IsADirectoryError:
            raise _BadInput(f"{where} is a directory, not a file") from None
        except OSError as err:
            raise _BadInput(f"{where} cannot be read: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise _BadInput(
            f"{where} is not UTF-8 text: byte 0x{data[err.start]:02x} at byte offset {err.start} "
            f"(line {line}) cannot be decoded"
        ) from None
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark is not part of the first line
        text = text[1:]
    if text == "":
        raise _BadInput(f"{where} is empty")
    return name, text


def _lines(text: str) -> list[str]:
    # split("\n"), not splitlines(): U+2028, \x1c … inside a sentence must not cut it in two.
    if text.endswith("\n"):
        text = text[:-1]
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _read_aligned(paths: list[str], labels: list[str], stdin: Any) -> list[list[str]]:
    if sum(p == "-" for p in paths) > 1:
        raise _BadInput("only one input may be '-' (standard input)")
    names, columns = [], []
    for path, label in zip(paths, labels):
        name, text = _read_text(path, label, stdin)
        names.append(name)
        columns.append(_lines(text))
    hyp = columns[-1]
    for label, name, column in zip(labels[:-1], names[:-1], columns[:-1]):
        if len(column) != len(hyp):
            raise _BadInput(
                f"{label} has {len(column)} lines, {labels[-1]} has {len(hyp)} ({name}, {names[-1]}); "
                "the files must align line by line"
            )
    return columns


def _read_conll(path: str, label: str, stdin: Any) -> tuple[str, list[list[str]], list[list[int]]]:
    """(name, tag sequences, line number of every tag) of a CoNLL file."""
    name, text = _read_text(path, label, stdin)
    sentences: list[list[str]] = []
    lines: list[list[int]] = []
    tags: list[str] = []
    where: list[int] = []
    for number, line in enumerate(_lines(text), start=1):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if tags:
                sentences.append(tags)
                lines.append(where)
            tags, where = [], []
            continue
        tags.append(columns[-1])
        where.append(number)
    if tags:
        sentences.append(tags)
        lines.append(where)
    if not sentences:
        raise _BadInput(f"{label} {name!r} holds no tagged tokens, only blank or -DOCSTART- lines")
    return name, sentences, lines


# -- output -----------------------------------------------------------------------------------
def _table(rows: list[list[str]]) -> str:
    """First column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _emit(stdout: Any, payload: dict, human: str, as_json: bool) -> None:
    if as_json:
        stdout.write(json.dumps(payload, ensure_ascii=False, indent=1) + "\n")
    else:
        stdout.write(human.rstrip("\n") + "\n")


# -- the metrics ------------------------------------------------------------------------------
def _error_rate(args: argparse.Namespace, stdin: Any, stdout: Any) -> None:
    import dataclasses

    import jiwer

    from .error_rate import EditCounts, align

    unit = "word" if args.metric == "wer" else "char"
    refs, hyps = _read_aligned([args.ref, args.hyp], ["REF", "HYP"], stdin)
    out = align(refs, hyps, unit=unit, normalize=args.normalize)
    counts = EditCounts(out.hits, out.substitutions, out.deletions, out.insertions, len(refs))
    name = args.metric.upper()
    payload: dict[str, Any] = {
        "metric": args.metric, "score": counts.rate, "normalize": args.normalize, "utterances": counts.utterances,
        "hits": counts.hits, "substitutions": counts.substitutions, "deletions": counts.deletions,
        "insertions": counts.insertions, "reference_length": counts.reference_length,
        "hypothesis_length": counts.hypothesis_length,
    }
    unit_name = "words" if unit == "word" else "characters"
    rows = [[name, f"{counts.rate:.4f}"], ["utterances", str(counts.utterances)],
            [f"reference {unit_name}", str(counts.reference_length)], ["hits", str(counts.hits)],
            ["substitutions", str(counts.substitutions)], ["deletions", str(counts.deletions)],
            ["insertions", str(counts.insertions)], ["normalize", args.normalize]]
    human = _table(rows)
    if args.details:
        per_utterance = []
        for i, chunks in enumerate(out.alignments):
            one = dataclasses.replace(out, references=[out.references[i]], hypotheses=[out.hypotheses[i]],
                                      alignments=[chunks])
            picture = jiwer.visualize_alignment(one, show_measures=False, skip_correct=False)
            # drop jiwer's "=== SENTENCE 1 ===" header and the padding at the ends of lines
            picture = "\n".join(line.rstrip() for line in picture.split("\n")[2:]).rstrip("\n")
            ops = {"equal": 0, "substitute": 0, "delete": 0, "insert": 0}
            for c in chunks:
                ops[c.type] += (c.hyp_end_idx - c.hyp_start_idx) if c.type == "insert" else (c.ref_end_idx - c.ref_start_idx)
            utt = EditCounts(ops["equal"], ops["substitute"], ops["delete"], ops["insert"], 1)
            per_utterance.append({
                "line": i + 1, "reference": refs[i], "hypothesis": hyps[i], "score": utt.rate, "hits": utt.hits,
                "substitutions": utt.substitutions, "deletions": utt.deletions, "insertions": utt.insertions,
                "alignment": picture,
            })
        payload["details"] = per_utterance
        blocks = [f"=== line {u['line']}: {name} {u['score']:.4f} (S={u['substitutions']} D={u['deletions']} "
                  f"I={u['insertions']}) ===\n{u['alignment']}" for u in per_utterance]
        human = "\n\n".join(blocks) + "\n\n" + human
    _emit(stdout, payload, human, args.json)


def _sacrebleu(args: argparse.Namespace, stdin: Any, stdout: Any) -> None:
    from .translation import BLEUAccumulator, ChrFAccumulator

    if len(args.files) < 2:
        raise _BadInput(f"{args.metric} needs at least one REF file and the HYP file (the last one)")
    if args.metric == "bleu":  # options are checked before any file is read
        acc = BLEUAccumulator(tokenize=args.tokenize, lowercase=args.lowercase)
    else:
        acc = ChrFAccumulator(word_order=args.word_order, lowercase=args.lowercase)
    n_refs = len(args.files) - 1
    labels = ["REF"] if n_refs == 1 else [f"REF{k + 1}" for k in range(n_refs)]
    *ref_sets, hyps = _read_aligned(args.files, labels + ["HYP"], stdin)
    references = [list(refs) for refs in zip(*ref_sets)]
    score = acc.update(references, hyps).compute()
    payload = {"metric": args.metric, **score.as_dict(), "sentences": len(hyps), "references": n_refs}
    rows = [[score.name, f"{score.score:.2f}"], ["sentences", str(len(hyps))], ["references", str(n_refs)]]
    human = f"{_table(rows)}\nsignature  {score.signature}\nsacrebleu  {score.formatted}"
    _emit(stdout, payload, human, args.json)


def _ner(args: argparse.Namespace, stdin: Any, stdout: Any) -> None:
    from .entities import EntityF1Accumulator, TagSequenceError

    if args.scheme is not None and args.mode != "strict":
        raise _BadInput(f"--scheme {args.scheme} applies only with --mode strict "
                        "(the default mode reads tags as seqeval does; conlleval too for B/I/O tags)")
    if sum(p == "-" for p in (args.gold, args.pred)) > 1:
        raise _BadInput("only one input may be '-' (standard input)")
    gold_name, gold, gold_lines = _read_conll(args.gold, "GOLD", stdin)
    pred_name, pred, pred_lines = _read_conll(args.pred, "PRED", stdin)
    if len(gold) != len(pred):
        raise _BadInput(f"GOLD has {len(gold)} sentences, PRED has {len(pred)} ({gold_name}, {pred_name}); "
                        "the files must align sentence by sentence")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise _BadInput(f"sentence {i + 1} has {len(g)} tokens in GOLD (line {gold_lines[i][0]}) but {len(p)} "
                            f"in PRED (line {pred_lines[i][0]}); the files must align token by token")
    acc = EntityF1Accumulator(mode=args.mode, scheme=args.scheme if args.mode == "strict" else None)
    try:
        scores = acc.update(gold, pred).compute()
    except TagSequenceError as err:
        label, name, lines = ("GOLD", gold_name, gold_lines) if err.side == "references" else ("PRED", pred_name, pred_lines)
        raise _BadInput(f"{label} {name!r} line {lines[err.sentence][err.token]} (sentence {err.sentence + 1}, "
                        f"token {err.token + 1}): tag {err.tag!r} {err.reason}") from None
    payload: dict[str, Any] = {"metric": "ner", "mode": scores.mode, "scheme": scores.scheme,
                               "sentences": len(gold), "score": scores.f1, **scores.micro.as_dict()}
    header = ["type", "precision", "recall", "f1", "support", "predicted", "correct"]

    def row(name: str, s) -> list[str]:
        return [name, f"{s.precision:.4f}", f"{s.recall:.4f}", f"{s.f1:.4f}", str(s.support), str(s.predicted),
                str(s.correct)]

    rows = [header]
    if args.details:
        payload["per_type"] = {k: v.as_dict() for k, v in scores.per_type.items()}
        rows += [row(k, v) for k, v in scores.per_type.items()]
    rows.append(row("micro", scores.micro))
    how = f"strict, scheme {scores.scheme}" if scores.mode == "strict" else "default (seqeval; conlleval for B/I/O)"
    human = f"entity F1, mode {how}, {len(gold)} sentences\n" + _table(rows)
    _emit(stdout, payload, human, args.json)


def _build_parser() -> argparse.ArgumentParser:
    from .entities import ENTITY_MODES, SCHEMES
    from .normalization import NORMALIZATIONS
    from .translation import BLEU_TOKENIZERS

    parser = _Parser(prog="seqlab eval", description="Score hypothesis files against references.")
    sub = parser.add_subparsers(dest="metric", metavar="METRIC", required=True, parser_class=_Parser)
    json_help = "print one JSON object instead of the table"
    for metric, what in (("wer", "word error rate (jiwer)"), ("cer", "character error rate (jiwer)")):
        p = sub.add_parser(metric, help=what, description=f"{what}; one utterance per line")
        p.add_argument("ref", metavar="REF", help="reference file, or - for standard input")
        p.add_argument("hyp", metavar="HYP", help="hypothesis file, or - for standard input")
        p.add_argument("--normalize", choices=NORMALIZATIONS, default="none",
                       help="none (default, as jiwer) or standard: lower-case, delete punctuation, collapse spaces")
        p.add_argument("--details", action="store_true", help="per-utterance alignment (jiwer's visualisation)")
        p.add_argument("--json", action="store_true", help=json_help)
    for metric, what in (("bleu", "corpus BLEU (sacrebleu)"), ("chrf", "corpus chrF (sacrebleu)")):
        p = sub.add_parser(metric, help=what, description=f"{what}; all files but the last are references")
        p.add_argument("files", nargs="+", metavar="FILE", help="REF [REF ...] HYP; one of them may be -")
        p.add_argument("--lowercase", action="store_true", help="case-insensitive")
        if metric == "bleu":
            p.add_argument("--tokenize", choices=BLEU_TOKENIZERS, default="13a", help="sacrebleu tokenizer (13a)")
        else:
            p.add_argument("--word-order", type=int, default=0, help="word n-gram order: 0 chrF (default), 2 chrF++")
        p.add_argument("--json", action="store_true", help=json_help)
    p = sub.add_parser("ner", help="entity precision/recall/F1 (seqeval)",
                       description="entity P/R/F1 of CoNLL files (tag = last column; blank line between sentences)")
    p.add_argument("gold", metavar="GOLD", help="gold CoNLL file, or - for standard input")
    p.add_argument("pred", metavar="PRED", help="predicted CoNLL file, or - for standard input")
    p.add_argument("--mode", choices=ENTITY_MODES, default="default",
                   help="default (seqeval's lenient reading; the same as conlleval's for B/I/O tags) or strict")
    p.add_argument("--scheme", choices=SCHEMES, default=None, help="tagging scheme for --mode strict (IOB2)")
    p.add_argument("--details", action="store_true", help="per-type scores")
    p.add_argument("--json", action="store_true", help=json_help)
    return parser


def run_metric_command(argv: list[str]) -> int:
    """Run ``seqlab eval <metric> …`` (``argv`` = the words after ``eval``); returns the exit status."""
    stdin, stdout, stderr = sys.stdin, sys.stdout, sys.stderr
    try:
        args = _build_parser().parse_args(list(argv))
        if args.metric in ("wer", "cer"):
            _error_rate(args, stdin, stdout)
        elif args.metric in ("bleu", "chrf"):
            _sacrebleu(args, stdin, stdout)
        else:
            _ner(args, stdin, stdout)
    except _BadInput as err:
        stderr.write(f"{PREFIX}{err}\n")
        return 2
    except SeqlabError as err:  # a library check caught something the reader did not
        stderr.write(f"{PREFIX}{' '.join(str(err).split())}\n")
        return 2
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else 0
    return 0


if __name__ == "__main__":
    sys.exit(run_metric_command(sys.argv[1:]))
