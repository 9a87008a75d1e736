"""Synthesize seqlab's small speech corpus: spoken digit strings and short commands.

Run from anywhere (needs ``espeak-ng`` on PATH: ``apt-get install -y espeak-ng``; it is
only needed to regenerate the corpus, never at run time)::

    python corpora/speech/make_corpus.py            # writes wavs/, transcripts.tsv, train.tsv, dev.tsv

Every choice (text, voice, speed, pitch, gain, noise, split) comes from one seeded
``numpy.random.Generator``, so a rerun with the same espeak-ng version (1.51 made the
committed files) writes the same corpus. Each clip: espeak-ng at 22,050 Hz → leading/
trailing silence trimmed → resampled to 16 kHz (polyphase, scipy) → random gain
(−12…−1 dBFS peak) and faint white noise (35–50 dB below the speech RMS) → 30 ms of
(noisy) silence each side → 16-bit mono WAV. Text: 1–5 digits ("three one four",
shorter strings more often) and a few two-word commands, in several espeak voices.

Outputs (TSVs have a ``file<TAB>text`` header; text is lower-case words):
``transcripts.tsv`` (all), ``train.tsv`` / ``dev.tsv`` (a seeded 85/15 split).
"""
from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

HERE = Path(__file__).resolve().parent
SEED = 20240611
RATE = 16000
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
PHRASES = [
    "yes", "no", "stop", "go", "turn left", "turn right", "go back", "move up", "move down",
    "yes please", "no thanks", "start again",
]
VOICES = ["en", "en-us", "en+f3", "en+m3", "en-us+f2", "en-gb-scotland+m1", "en+f4", "en-029+m7", "en+klatt2"]
#: How many digits a digit string has (shorter strings more often keeps the corpus small).
DIGIT_COUNTS, DIGIT_WEIGHTS = [1, 2, 3, 4, 5], [0.35, 0.3, 0.2, 0.1, 0.05]


def synthesize(text: str, voice: str, speed: int, pitch: int) -> tuple[np.ndarray, int]:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    data, sr = sf.read(io.BytesIO(wav), dtype="float32")
    return data, sr


def trim(x: np.ndarray, threshold_db: float = -40.0) -> np.ndarray:
    """Drop leading/trailing samples quieter than ``threshold_db`` below the peak (10 ms windows)."""
    frame = 160
    n = len(x) // frame
    if n == 0:
        return x
    energy = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(energy > np.max(np.abs(x)) * 10 ** (threshold_db / 20))
    if not loud.size:
        return x
    return x[loud[0] * frame : (loud[-1] + 1) * frame]


def make_clip(rng: np.random.Generator, text: str) -> np.ndarray:
    voice = VOICES[rng.integers(len(VOICES))]
    speed = int(rng.integers(180, 290))
    pitch = int(rng.integers(25, 75))
    raw, sr = synthesize(text, voice, speed, pitch)
    y = resample_poly(trim(raw), RATE, sr).astype(np.float64)
    y *= 10 ** (rng.uniform(-12.0, -1.0) / 20) / max(np.max(np.abs(y)), 1e-9)
    pad = np.zeros(int(0.03 * RATE))
    y = np.concatenate([pad, y, pad])
    rms = np.sqrt(np.mean(y**2))
    y += rng.standard_normal(len(y)) * rms * 10 ** (-rng.uniform(35.0, 50.0) / 20)
    return np.clip(y, -1.0, 1.0)


def make_text(rng: np.random.Generator) -> str:
    if rng.random() < 0.15:
        return PHRASES[rng.integers(len(PHRASES))]
    k = int(rng.choice(DIGIT_COUNTS, p=DIGIT_WEIGHTS))
    return " ".join(DIGITS[d] for d in rng.integers(0, 10, size=k))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=HERE)
    p.add_argument("--clips", type=int, default=320)
    p.add_argument("--dev-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args()
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed (apt-get install -y espeak-ng); it is needed only to regenerate the corpus")

    rng = np.random.default_rng(args.seed)
    wavs = args.out / "wavs"
    if wavs.exists():
        shutil.rmtree(wavs)
    wavs.mkdir(parents=True)
    rows = []
    for i in range(args.clips):
        text = make_text(rng)
        name = f"wavs/utt{i:04d}.wav"
        sf.write(args.out / name, make_clip(rng, text), RATE, subtype="PCM_16")
        rows.append((name, text))
    order = rng.permutation(len(rows))
    n_dev = int(round(args.dev_fraction * len(rows)))
    dev = sorted(order[:n_dev].tolist())
    train = sorted(order[n_dev:].tolist())

    def write(path: Path, idx: list[int]) -> None:
        path.write_text("file\ttext\n" + "".join(f"{rows[i][0]}\t{rows[i][1]}\n" for i in idx), encoding="utf-8")

    write(args.out / "transcripts.tsv", list(range(len(rows))))
    write(args.out / "train.tsv", train)
    write(args.out / "dev.tsv", dev)
    total = sum(f.stat().st_size for f in wavs.iterdir())
    seconds = sum(sf.info(str(f)).duration for f in wavs.iterdir())
    print(f"wrote {len(rows)} clips ({len(train)} train, {len(dev)} dev), {seconds:.0f} s of audio, {total / 1e6:.2f} MB, to {args.out}")


if __name__ == "__main__":
    main()
