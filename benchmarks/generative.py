"""Generative speech-feature pipelines on real speech: anomaly detection, MFCC denoising, conditional GAN.

    python benchmarks/generative.py [--budget-min 20] [--part anomaly|denoise|cgan|all] [--device auto|cpu|cuda]

Bars (issue "The common core: blocks, CNN, autoencoders and GANs"), each part trained
within ``--budget-min`` minutes:

- ``anomaly_auc`` >= 0.95: an autoencoder on MFCC patches of spoken digits (FSDD) scores
  held-out digit clips against 0.5–1 s segments of other audio (Hebrew "yes"/"no" from
  yesno, English read speech from LJ Speech); the score is a clip's mean patch error;
- ``denoise_snr_gain_db`` >= 5: white and pink noise added to held-out FSDD waveforms at
  10 dB; MFCC SNR of the denoised vs the noisy features against the clean ones;
- ``cgan_class_accuracy`` >= 0.80: a conditional DCGAN generates 1 × 20 × 32 MFCC images
  (20 coefficients, resized to 32 frames) of each digit, and a digit classifier must
  recognise the requested digit. The judge (``--judge auto``): the speech task's FSDD model
  (``runs/benchmarks/speech_isolated``, written by ``benchmarks/speech.py``) through
  ``seqlab.tasks.speech.recognise_digits`` on the generated features, when that model
  exists; else a CNN digit classifier trained here on the real training images. The CNN is
  always trained and reported; the judge's accuracy on held-out *real* images (made the
  same way) is reported beside its verdict on the samples.

Data (``$SEQLAB_CORPORA/speech``; nothing is copied into the repository):

- FSDD: only ``metadata.tsv`` rows with ``split == train`` (takes 5–49; the official test
  takes 0–4 and a sixth speaker are kept aside), split as ``benchmarks/speech.py`` does so
  that its model can judge: takes 5–9 → test (250 clips), takes 10–11 → validation (100),
  takes 12–49 → training (1,900); every speaker and digit is in all three.
- yesno (sorted by name): the first 30 recordings → validation, the last 30 → test;
  LJ Speech sample: the first 16 → validation, the last 16 → test. Both are cut into
  consecutive segments of 0.5–1.0 s (seeded), pauses (RMS 20 dB below the recording's)
  dropped; they are the out-of-class audio.
- Everything at 8 kHz, FSDD's own rate: LJ Speech (22.05 kHz) is resampled down, so all
  sources share one 4 kHz bandwidth. At 16 kHz the LJ clips alone would carry energy
  above 4 kHz, an artefact an anomaly detector would find trivially.

Features: 13 MFCCs (20 for the GAN, as the speech model), n_fft 256 (32 ms), hop 80
(10 ms), 40 mels, global CMVN fitted on the training clips. Settings are fixed here a priori; validation data is used for early
stopping, the anomaly threshold and nothing else (``--report-split val`` reports on
validation instead of test, for choosing settings without touching the test split).
Writes ``benchmarks/results/generative.json`` (running one part keeps the other parts'
figures from the previous file), the sample grid ``benchmarks/results/generative_cgan_samples.png``
and the trained pipelines under ``runs/benchmarks/generative/PART``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, RUNS, corpora_dir, git_commit, parser, write_results  # noqa: E402

PARTS = ("anomaly", "denoise", "cgan")
SAMPLE_RATE = 8000
FEATURES = {"sample_rate": SAMPLE_RATE, "n_fft": 256, "hop_length": 80, "n_mels": 40, "n_mfcc": 13, "cmvn": "global"}


def load_clips(paths, sample_rate: int) -> list:
    """Files → 1-D float32 clips at ``sample_rate`` (the pipelines' own ``audio_loader`` stage)."""
    from seqlab.audio.io import AudioLoader

    loader = AudioLoader(sample_rate=sample_rate)
    items = [str(p) for p in paths]
    return [clip for s in range(0, len(items), 256) for clip in loader({"audio": items[s:s + 256]})["audio"]]


def fsdd_splits(speech: Path):
    """FSDD training-split rows → (train, val, test) ClipSets with digit labels."""
    import numpy as np

    from seqlab.data.clips import ClipSet

    fsdd = speech / "fsdd"
    rows = [line.rstrip("\n").split("\t") for line in (fsdd / "metadata.tsv").read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    rows = [r for r in rows if r[col["split"]] == "train"]
    paths = [fsdd / "recordings" / r[col["file"]] for r in rows]
    audio = load_clips(paths, SAMPLE_RATE)
    digits = [int(r[col["digit"]]) for r in rows]
    take = np.array([int(r[col["index"]]) for r in rows])
    clips = ClipSet(audio, digits, [False] * len(rows), [p.name for p in paths])
    # The speech benchmark's split (its model never trains on takes 5–9).
    test = np.flatnonzero((take >= 5) & (take <= 9))
    val = np.flatnonzero((take >= 10) & (take <= 11))
    train = np.flatnonzero(take >= 12)
    return clips.subset(train), clips.subset(val), clips.subset(test)


def outlier_splits(speech: Path, seed: int = 0):
    """yesno and LJ Speech segments → (val, test) out-of-class ClipSets."""
    import numpy as np

    from seqlab.audio.noise import cut_segments
    from seqlab.data.clips import ClipSet

    yesno = sorted((speech / "yesno" / "waves_yesno").glob("*.wav"))
    lj = sorted((speech / "ljspeech_sample" / "wavs").glob("*.wav"))
    if len(yesno) < 2 or len(lj) < 2:
        sys.exit(f"yesno / ljspeech_sample recordings not found under {speech}")
    rng = np.random.default_rng(seed)

    def segments(files):
        audio, names = [], []
        for path, clip in zip(files, load_clips(files, SAMPLE_RATE)):
            for k, seg in enumerate(cut_segments(clip, SAMPLE_RATE, 0.5, 1.0, rng=rng)):
                audio.append(seg)
                names.append(f"{path.parent.parent.name}/{path.name}#{k}")
        return ClipSet(audio, anomalous=[True] * len(audio), names=names)

    half_y, half_l = len(yesno) // 2, len(lj) // 2
    return segments(yesno[:half_y] + lj[:half_l]), segments(yesno[half_y:] + lj[half_l:])


def train_recipe(task: str, settings: dict, train, dev, device: str):
    """The task's recipe from ``settings`` → pipeline trained on ``train`` (dev: ``dev``) → (pipeline, result, recipe)."""
    from seqlab.recipe import load_recipe

    recipe = load_recipe(data={"task": task, **{k: v for k, v in settings.items() if k != "snr"}, "device": device,
                               "output": str(RUNS / "generative" / task)})
    pipe = recipe.build()
    result = pipe.fit(train, dev, recipe.train, log_dir=RUNS / "generative" / task / "logs")
    return pipe, result, recipe


def save_run(pipe, recipe, settings: dict) -> None:
    """Save under runs/benchmarks/generative/TASK with the recipe, so ``seqlab eval`` reads data for it."""
    from seqlab.core.config import to_dict

    pipe.save(RUNS / "generative" / recipe.task, meta={"recipe": to_dict(recipe), "settings": settings})


#: The Trainer settings the generative loop had as defaults (plateau halving after 3 bad epochs, clip 5).
AUTOENCODER_TRAIN = {"schedule": "plateau", "plateau_factor": 0.5, "plateau_patience": 3, "clip_norm": 5.0}


def run_anomaly(data, budget_s: float, device: str):
    train, val, test, out_val, out_test = data
    settings = {
        "features": FEATURES,
        "patches": {"frames": 10, "hop": 2, "clip_score": "mean"},
        "model": {"kind": "dense", "code_size": 16, "hidden_sizes": [256, 64], "activation": "relu"},
        "threshold": {"method": "youden"},
        "train": {"epochs": 300, "batch_size": 256, "lr": 1e-3, "patience": 30, "time_budget_s": budget_s, "seed": 0,
                  **AUTOENCODER_TRAIN},
    }
    pipe, result, recipe = train_recipe("anomaly", settings, train, val + out_val, device)
    report = pipe.evaluate(test + out_test)
    save_run(pipe, recipe, settings)
    metrics = {"anomaly_auc": round(report["auc"], 4),
               "anomaly_detection_rate": round(report["detection_rate"], 4),
               "anomaly_false_alarm_rate": round(report["false_alarm_rate"], 4)}
    settings.update({"clips": {"train_digits": len(train), "val_digits": len(val), "val_outliers": len(out_val),
                               "test_digits": len(test), "test_outliers": len(out_test)},
                     "epochs_run": result.history[-1]["epoch"], "steps": result.steps, "stopped_by": result.stopped_by,
                     "train_s": round(result.train_seconds, 1), "threshold": report["threshold"]})
    return metrics, settings


def run_denoise(data, budget_s: float, device: str):
    train, val, test = data[:3]
    settings = {
        "features": FEATURES,
        "patches": {"frames": 21, "hop": 2, "inference_hop": 1},
        "model": {"kind": "dense", "code_size": 256, "hidden_sizes": [1024], "activation": "relu"},
        "noise": {"kinds": ["white", "pink"], "train_snr_db": [5.0, 15.0], "eval_snr_db": 10.0, "copies": 4, "seed": 0},
        "train": {"epochs": 200, "batch_size": 256, "lr": 1e-3, "patience": 15, "time_budget_s": budget_s, "seed": 0,
                  **AUTOENCODER_TRAIN},
        "snr": "SNR_dB(ref, x) = 10·log10(Σref² / Σ(ref − x)²) over all coefficients, frames and clips, on MFCCs "
               "normalised by global CMVN with the clean training clips' mean and std (reference, noisy and denoised alike)",
    }
    pipe, result, recipe = train_recipe("denoise", settings, train, val, device)
    report = pipe.evaluate(test)
    save_run(pipe, recipe, settings)
    metrics = {"denoise_snr_gain_db": round(report["snr_gain_db"], 3),
               "denoise_snr_noisy_db": round(report["snr_noisy_db"], 3),
               "denoise_snr_denoised_db": round(report["snr_denoised_db"], 3),
               "denoise_white_snr_gain_db": round(report["white_snr_gain_db"], 3),
               "denoise_pink_snr_gain_db": round(report["pink_snr_gain_db"], 3)}
    settings.update({"clips": {"train": len(train), "val": len(val), "test": len(test)},
                     "epochs_run": result.history[-1]["epoch"], "steps": result.steps, "stopped_by": result.stopped_by,
                     "train_s": round(result.train_seconds, 1)})
    return metrics, settings


def load_speech_judge(directory: Path):
    """The speech task's saved FSDD pipeline and its MFCC stage, or (None, reason)."""
    if not (directory / "config.json").is_file():
        return None, f"no trained speech model at {directory} (run benchmarks/speech.py --part isolated first)"
    import seqlab
    from seqlab.core.errors import SeqlabError

    try:
        pipe = seqlab.load(directory, device="cpu")
    except (SeqlabError, ImportError) as err:
        return None, f"the speech model at {directory} cannot be loaded: {err}"
    stages = [st for st in pipe.stages if st.kind == "mfcc"]
    if not stages or stages[0].config.deltas or stages[0].config.sample_rate != SAMPLE_RATE:
        return None, f"the speech model at {directory} does not use {SAMPLE_RATE} Hz MFCCs without deltas"
    return (pipe, stages[0]), None


def to_judge_features(images, image_stage, stage) -> list:
    """Generator images (CMVN/scale, clipped) → the speech pipeline's own feature space, per example.

    Undo the image scaling and the generator's global CMVN (raw MFCCs), then apply the speech
    stage's normalisation (utterance CMVN over each image's frames, or its global statistics)."""
    import torch

    from seqlab.audio.features import CMVN_EPS

    x = images[:, 0].transpose(1, 2).double() * image_stage.config.image.scale   # (N, frames, n_mfcc), global-CMVN space
    t = image_stage.mfcc.transform
    raw = x * t.cmvn_std.double().cpu() + t.cmvn_mean.double().cpu()
    cfg = stage.config
    if cfg.cmvn == "utterance":
        raw = raw - raw.mean(1, keepdim=True)
        if cfg.cmvn_variance:
            raw = raw / (raw.pow(2).mean(1, keepdim=True) + CMVN_EPS).sqrt()
    elif cfg.cmvn == "global":
        raw = (raw - stage.transform.cmvn_mean.double().cpu()) / stage.transform.cmvn_std.double().cpu()
    return [f.float().numpy() for f in torch.unbind(raw)]


def speech_judge_accuracy(judge, image_stage, images, labels) -> float:
    from seqlab.tasks.speech import recognise_digits

    pipe, stage = judge
    guesses = recognise_digits(pipe, features=to_judge_features(images, image_stage, stage))
    return sum(int(g["digit"] == y) for g, y in zip(guesses, labels)) / len(labels)


def real_images(pipe, clips):
    """The pipeline's own ``mfcc_image`` stage on real clips → ``(N, 1, n_mfcc, frames)``."""
    import numpy as np
    import torch

    image_stage = pipe.stages[-1]
    return torch.from_numpy(np.stack(image_stage({"audio": list(clips.audio)})["image"])).unsqueeze(1)


def cnn_accuracy(model, images, digits) -> float:
    """The pipeline's CNN judge on real images."""
    import torch

    predicted = model.classifier.predict(images.to(next(model.parameters()).device)).cpu()
    return float((predicted == torch.tensor(digits)).float().mean())


def run_cgan(data, budget_s: float, device: str, judge_choice: str = "auto", speech_model: Path | None = None):
    import torch

    train, val, test = data[:3]
    judge, why_not = load_speech_judge(speech_model or RUNS / "speech_isolated") if judge_choice != "cnn" else (None, "--judge cnn")
    if judge_choice == "speech" and judge is None:
        sys.exit(f"--judge speech: {why_not}")
    features = dict(FEATURES, n_mfcc=20)
    if judge is not None:  # generate in the judge's own MFCC space (its settings; CMVN is undone before it listens)
        from seqlab.core.config import to_dict

        features = {k: v for k, v in to_dict(judge[1].config).items() if k != "device"}
        features["cmvn"] = "global"
    settings = {
        "features": features,
        "image": {"frames": 32, "mode": "resize", "scale": 3.0},
        "model": {"latent_size": 32, "channels": [64, 128], "num_classes": 10},
        # The judge trains on the real images during the GAN's first 30 epochs (before: 30 epochs first).
        "classifier": {"channels": [32, 64], "hidden_size": 128, "dropout": 0.3, "epochs": 30, "lr": 1e-3,
                       "eval_samples_per_class": 100},
        "train": {"epochs": 1000, "batch_size": 64, "time_budget_s": budget_s, "seed": 0, "clip_norm": None},
    }
    pipe, result, recipe = train_recipe("cgan", settings, train, val, device)
    model, image_stage = pipe.model, pipe.stages[-1]
    per_class = settings["classifier"]["eval_samples_per_class"]
    cnn_per_digit = model.class_accuracies(per_class, seed=0)
    test_images = real_images(pipe, test)
    metrics = {"cgan_class_accuracy_cnn": round(sum(cnn_per_digit) / len(cnn_per_digit), 4),
               "cgan_cnn_real_accuracy": round(cnn_accuracy(model, test_images, test.digits), 4)}
    settings["judge"] = ("speech task's FSDD model (recognise_digits on the generated MFCCs)" if judge is not None
                         else f"CNN digit classifier trained here on the real training images ({why_not})")
    if judge is not None:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            labels = [d for d in range(10) for _ in range(per_class)]
            samples = model.sample(len(labels), labels).cpu()
        metrics["cgan_class_accuracy_speech_model"] = round(speech_judge_accuracy(judge, image_stage, samples, labels), 4)
        metrics["cgan_speech_model_real_accuracy"] = round(speech_judge_accuracy(judge, image_stage, test_images, test.digits), 4)
        from seqlab.tasks.speech import recognise_digits

        full = recognise_digits(judge[0], test.audio, sample_rate=SAMPLE_RATE)
        settings["speech_model_real_accuracy_full_length"] = round(
            sum(int(g["digit"] == y) for g, y in zip(full, test.digits)) / len(full), 4)
        settings["speech_model"] = str(speech_model or RUNS / "speech_isolated")
        metrics["cgan_class_accuracy"] = metrics["cgan_class_accuracy_speech_model"]
        metrics["cgan_judge_real_accuracy"] = metrics["cgan_speech_model_real_accuracy"]
    else:
        metrics["cgan_class_accuracy"] = metrics["cgan_class_accuracy_cnn"]
        metrics["cgan_judge_real_accuracy"] = metrics["cgan_cnn_real_accuracy"]
    save_run(pipe, recipe, settings)
    n_mfcc = settings["features"]["n_mfcc"]
    grid = model.save_grid(RESULTS / "generative_cgan_samples.png", per_class=10, seed=0,
                           title=f"conditional DCGAN: 1×{n_mfcc}×32 MFCC images (CMVN/3), one row per requested digit")
    settings.update({"clips": {"train": len(train), "val": len(val), "test": len(test)},
                     "cnn_per_digit_class_accuracy": [round(a, 3) for a in cnn_per_digit],
                     "cnn_val_accuracy": round(cnn_accuracy(model, real_images(pipe, val), val.digits), 4),
                     "gan_epochs_run": result.history[-1]["epoch"], "gan_steps": result.steps,
                     "best_epoch_step": result.best_step, "stopped_by": result.stopped_by,
                     "train_s": round(result.train_seconds, 1), "grid": str(grid.relative_to(RESULTS.parent.parent))})
    return metrics, settings


def main() -> None:
    p = parser("Generative speech-feature benchmark (anomaly, denoising, conditional GAN)", budget_min=20)
    p.add_argument("--part", choices=(*PARTS, "all"), default="all", help="which pipeline to run (default all)")
    p.add_argument("--report-split", choices=("test", "val"), default="test",
                   help="report on the test split (default) or on validation (choosing settings without seeing test)")
    p.add_argument("--judge", choices=("auto", "speech", "cnn"), default="auto",
                   help="cgan judge: the speech task's FSDD model if saved (auto), required (speech), or the CNN trained here")
    p.add_argument("--speech-model", type=Path, default=None, help="saved speech pipeline (default runs/benchmarks/speech_isolated)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: these models are small, and on a shared machine OpenMP "
                        "spin-waiting makes 2 threads many times slower than 1)")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from seqlab.core.device import resolve_device

    device = resolve_device(args.device)
    torch.manual_seed(0)
    speech = corpora_dir() / "speech"
    budget_s = args.budget_min * 60
    parts = PARTS if args.part == "all" else (args.part,)
    start = time.perf_counter()
    print(f"loading FSDD, yesno and LJ Speech at {SAMPLE_RATE} Hz …", flush=True)
    train, val, test = fsdd_splits(speech)
    out_val, out_test = outlier_splits(speech)
    if args.report_split == "val":  # never look at test while choosing settings
        test, out_test = val, out_val
    data = (train, val, test, out_val, out_test)
    print(f"FSDD train/val/test clips: {len(train)}/{len(val)}/{len(test)}; out-of-class segments val/test: "
          f"{len(out_val)}/{len(out_test)} ({time.perf_counter() - start:.1f} s)", flush=True)

    metrics: dict = {}
    settings: dict = {"run": "full" if args.budget_min >= 20 else
                      f"SMOKE run: {args.budget_min:g} min per part, below the bars' 20 minutes; not the benchmark's figures",
                      "corpora": str(speech), "report_split": args.report_split, "budget_s_per_part": budget_s,
                      "threads": torch.get_num_threads(),
                      "sample_rate": SAMPLE_RATE, "parts_run": list(parts)}
    runners = {"anomaly": run_anomaly, "denoise": run_denoise, "cgan": run_cgan}
    for part in parts:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        print(f"\n== {part}: training within {budget_s:.0f} s", flush=True)
        extra = {"judge_choice": args.judge, "speech_model": args.speech_model} if part == "cgan" else {}
        part_metrics, part_settings = runners[part](data, budget_s, str(device), **extra)
        part_settings.update({"wall_s": round(time.perf_counter() - t0, 1), "budget_s": budget_s, "commit": git_commit()})
        metrics.update(part_metrics)
        settings[part] = part_settings
        print(json.dumps(part_metrics), flush=True)
    previous = RESULTS / "generative.json"
    old = json.loads(previous.read_text()) if args.part != "all" and previous.is_file() else {}
    if old.get("settings", {}).get("report_split") == args.report_split:
        for part in PARTS:
            if part not in parts and part in old.get("settings", {}):
                settings[part] = old["settings"][part]
                metrics.update({k: v for k, v in old.get("metrics", {}).items() if k.startswith(f"{part}_")})
    write_results("generative", metrics, settings, budget_s * len(parts), time.perf_counter() - start, device)


if __name__ == "__main__":
    main()
