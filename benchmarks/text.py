"""Text front-end benchmark: sentencepiece throughput through ``datasets.map`` and word2vec training.

On the real training text of SST-2 (``sentiment/sst2/train.tsv``, 67,349 phrases) and
Multi30k (``translation/multi30k/train.en`` + ``train.de``, 2 × 29,000 sentences):

1. train one unigram sentencepiece model on all of it (time);
2. tokenize each corpus with the stage via ``Dataset.map(stage, batched=True)``, with
   ``num_proc`` 1 and 2, caching disabled and a fresh fingerprint per run, so every
   figure is real work (sentences/s, best of ``--repeats``); also the bare stage call;
3. train skip-gram word2vec on the word-tokenized (lower-cased, punctuation split) text
   of both corpora (time, words/s) and print the nearest neighbours of a few words.

    python benchmarks/text.py [--vocab-size 8000] [--repeats 2] [--w2v-epochs 5]

Writes ``benchmarks/results/text.json`` (the neighbours under ``w2v_neighbours``).
"""
from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import corpora_dir, parser, write_results  # noqa: E402

NEIGHBOUR_WORDS = ["good", "bad", "movie", "funny", "dog", "man", "water", "hund", "frau", "straße"]


def main() -> None:
    p = parser("sentencepiece + word2vec throughput on SST-2 and Multi30k", budget_min=10)
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--model-type", default="unigram", choices=["unigram", "bpe"])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--w2v-dim", type=int, default=100)
    p.add_argument("--w2v-epochs", type=int, default=5)
    p.add_argument("--w2v-workers", type=int, default=1, help="1 is deterministic")
    args = p.parse_args()

    import datasets
    import torch

    from seqlab.core.device import resolve_device
    from seqlab.data.readers import read_text, read_tsv
    from seqlab.embeddings.word2vec import Word2VecStage
    from seqlab.text.sentencepiece import SentencePieceTokenizer
    from seqlab.text.tokenizers import WordTokenizer

    datasets.disable_caching()
    datasets.disable_progress_bars()
    start = time.perf_counter()
    root = corpora_dir()
    sst2 = read_tsv(root / "sentiment" / "sst2" / "train.tsv").rename_column("sentence", "text").remove_columns("label")
    m30k = datasets.concatenate_datasets([
        read_text(root / "translation" / "multi30k" / "train.en"),
        read_text(root / "translation" / "multi30k" / "train.de"),
    ])
    corpora = {"sst2": sst2, "multi30k": m30k}
    print(f"SST-2 train: {len(sst2):,} texts; Multi30k train en+de: {len(m30k):,} sentences")

    metrics: dict = {}
    # -- 1. sentencepiece training -----------------------------------------------------------
    both = datasets.concatenate_datasets([sst2, m30k])
    t0 = time.perf_counter()
    sp = SentencePieceTokenizer(vocab_size=args.vocab_size, model_type=args.model_type).fit(both)
    metrics["sp_train_s"] = round(time.perf_counter() - t0, 2)
    print(f"sentencepiece {args.model_type} {args.vocab_size}: trained in {metrics['sp_train_s']} s")

    # -- 2. tokenization throughput ------------------------------------------------------------
    for name, ds in corpora.items():
        texts = ds[:]["text"]
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ids = sp({"text": texts})["input_ids"]
            best = min(best, time.perf_counter() - t0)
        metrics[f"sp_{name}_stage_sentences_per_s"] = round(len(texts) / best)
        metrics[f"sp_{name}_pieces_per_sentence"] = round(sum(map(len, ids)) / len(ids), 2)
        for num_proc in (1, 2):
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = ds.map(sp, batched=True, num_proc=num_proc if num_proc > 1 else None,
                             load_from_cache_file=False, new_fingerprint=uuid.uuid4().hex)
                best = min(best, time.perf_counter() - t0)
            assert len(out) == len(ds)
            metrics[f"sp_{name}_map_sentences_per_s_np{num_proc}"] = round(len(ds) / best)
            print(f"  {name}: map num_proc={num_proc}: {len(ds) / best:,.0f} sentences/s")

    # -- 3. word2vec ------------------------------------------------------------------------
    words = WordTokenizer(split="punct", lowercase=True)
    tokens = both.map(words, batched=True, remove_columns=["text"])
    n_words = sum(len(t) for t in tokens[:]["tokens"])
    stage = Word2VecStage(
        algorithm="skipgram", dim=args.w2v_dim, window=5, min_count=2, negative=5,
        epochs=args.w2v_epochs, workers=args.w2v_workers, seed=0,
    )
    t0 = time.perf_counter()
    stage.fit(tokens)
    w2v_s = time.perf_counter() - t0
    metrics["w2v_train_s"] = round(w2v_s, 2)
    metrics["w2v_corpus_words"] = n_words
    metrics["w2v_words_per_s"] = round(n_words * args.w2v_epochs / w2v_s)
    metrics["w2v_vocab_size"] = len(stage.vectors)
    neighbours = {}
    print("\nnearest neighbours (cosine):")
    for word in NEIGHBOUR_WORDS:
        if word in stage.vectors.key_to_index:
            near = stage.most_similar(word, topn=6)
            neighbours[word] = [[w, round(float(s), 3)] for w, s in near]
            print(f"  {word:>8}: " + ", ".join(f"{w} ({s:.2f})" for w, s in near))

    settings = {
        "sp_model_type": args.model_type, "sp_vocab_size": args.vocab_size, "repeats": args.repeats,
        "sp_corpus": "sst2 train.tsv + multi30k train.en + train.de", "datasets_cache": "disabled",
        "w2v": {"algorithm": "skipgram", "dim": args.w2v_dim, "window": 5, "min_count": 2, "negative": 5,
                "epochs": args.w2v_epochs, "workers": args.w2v_workers, "seed": 0,
                "tokenizer": "word_tokenizer split=punct lowercase"},
        "torch_threads": torch.get_num_threads(),
    }
    path = write_results("text", metrics, settings, budget_s=args.budget_min * 60,
                         wall_s=time.perf_counter() - start, device=resolve_device("cpu"))
    # The neighbours are evidence, not figures: stored beside the metrics, not in the table.
    result = json.loads(path.read_text(encoding="utf-8"))
    result["w2v_neighbours"] = neighbours
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
