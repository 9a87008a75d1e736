"""MFCC throughput of seqlab's ``mfcc`` stage against ``librosa.feature.mfcc``, on real speech.

Clips: all FSDD recordings (8 kHz) and the LJ Speech sample (22.05 kHz), resampled to
16 kHz before any timing. Settings: ``librosa.feature.mfcc(y, sr=16000, n_mfcc=13,
n_fft=512, hop_length=160, n_mels=40)`` per clip, against seqlab's default ``MFCC``
stage (the same features, librosa-compatible by default) called on batches of
``--batch`` clips, as ``datasets.map(batched=True)`` would. librosa is timed with
numpy's default BLAS threads and with one BLAS thread; the faster is the baseline. Each contender gets one
warm-up call, then ``--repeats`` timed passes over all clips, interleaved so load
changes on the machine hit both alike; throughput is audio-seconds per second (median),
the ratio the median of the per-repeat ratios. torchaudio's default
``transforms.MFCC`` (same sizes) is timed too, for reference, on length-sorted padded
batches and per clip.

    python benchmarks/features.py [--device cpu|cuda] [--repeats 7] [--threads N] [--profile]
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

LIBROSA = dict(sr=16000, n_mfcc=13, n_fft=512, hop_length=160, n_mels=40)


def load_clips(corpora: Path) -> tuple[list[np.ndarray], dict]:
    import soundfile as sf

    from seqlab.audio.resample import resample_clips

    groups = {
        "fsdd": sorted((corpora / "speech" / "fsdd" / "recordings").glob("*.wav")),
        "ljspeech_sample": sorted((corpora / "speech" / "ljspeech_sample" / "wavs").glob("*.wav")),
    }
    clips: list[np.ndarray] = []
    info = {}
    for name, files in groups.items():
        if not files:
            sys.exit(f"no wav files for {name} under {corpora}")
        by_rate: dict[int, list[np.ndarray]] = {}
        for f in files:
            y, sr = sf.read(str(f), dtype="float32")
            by_rate.setdefault(sr, []).append(y if y.ndim == 1 else y.mean(axis=1))
        for sr, ys in by_rate.items():
            clips.extend(resample_clips(ys, sr, 16000))
        info[name] = {"clips": len(files), "sample_rates": sorted(by_rate)}
    return clips, info


def main() -> None:
    p = _common.parser("MFCC throughput: seqlab stage vs librosa", budget_min=0)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batch", type=int, default=1000, help="clips per stage call (datasets.map's default)")
    p.add_argument("--profile", action="store_true", help="print a torch profiler table of one stage call")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = p.parse_args()

    import librosa
    import torch
    import torchaudio
    from threadpoolctl import threadpool_limits

    from seqlab.audio import MFCC
    from seqlab.core.device import resolve_device

    wall0 = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    load_start = os.getloadavg()[0]
    clips, info = load_clips(_common.corpora_dir())
    seconds = sum(len(c) for c in clips) / 16000
    print(f"{len(clips)} clips, {seconds:.1f} s of audio at 16 kHz; device {_common.describe_device(device)}; "
          f"load average {load_start:.2f}")

    stage = MFCC(device=str(device))
    batches = [clips[i : i + args.batch] for i in range(0, len(clips), args.batch)]

    def run_librosa() -> list[np.ndarray]:
        return [librosa.feature.mfcc(y=c, **LIBROSA) for c in clips]

    def run_librosa_blas1() -> list[np.ndarray]:
        # numpy's BLAS (the mel product) with one thread: much faster on a busy machine
        with threadpool_limits(limits=1):
            return run_librosa()

    def run_seqlab() -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for b in batches:
            out.extend(stage({"audio": b})["features"])
        return out

    ta_mfcc = torchaudio.transforms.MFCC(
        sample_rate=16000, n_mfcc=13, melkwargs=dict(n_fft=512, hop_length=160, n_mels=40)
    ).to(device)
    order = sorted(range(len(clips)), key=lambda i: len(clips[i]))
    ta_batches = [[torch.from_numpy(clips[i]) for i in order[s : s + 64]] for s in range(0, len(order), 64)]

    def run_torchaudio_batched() -> None:
        with torch.no_grad():
            for b in ta_batches:
                ta_mfcc(torch.nn.utils.rnn.pad_sequence(b, batch_first=True).to(device)).cpu()

    def run_torchaudio_per_clip() -> None:
        with torch.no_grad():
            for c in clips:
                ta_mfcc(torch.from_numpy(c).to(device)).cpu()

    # warm-up (also the parity check: the same clips through both)
    ref = run_librosa()
    ours = run_seqlab()
    err = max(float(np.max(np.abs(o - r.T))) for o, r in zip(ours, ref))
    scale = max(float(np.max(np.abs(r))) for r in ref)
    run_torchaudio_batched()
    run_torchaudio_per_clip()

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return seconds / (time.perf_counter() - t0)

    run_librosa_blas1()
    lib_default, lib_blas1, lib, sq, ratios, tab, tac = [], [], [], [], [], [], []
    for r in range(args.repeats):
        lib_default.append(timed(run_librosa))
        sq.append(timed(run_seqlab))
        lib_blas1.append(timed(run_librosa_blas1))
        # the baseline is librosa's faster configuration in this repeat
        lib.append(max(lib_default[-1], lib_blas1[-1]))
        ratios.append(sq[-1] / lib[-1])
        tab.append(timed(run_torchaudio_batched))
        if r < 2:
            tac.append(timed(run_torchaudio_per_clip))
        print(f"repeat {r + 1}: librosa {lib_default[-1]:.0f} (BLAS 1 thread: {lib_blas1[-1]:.0f}), seqlab {sq[-1]:.0f}, "
              f"torchaudio batched {tab[-1]:.0f} audio-s/s")

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run_seqlab()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))

    metrics = {
        "mfcc_speed_ratio_vs_librosa": round(statistics.median(ratios), 3),
        "mfcc_audio_s_per_s": round(statistics.median(sq), 1),
        "librosa_audio_s_per_s": round(statistics.median(lib), 1),
        "librosa_default_threads_audio_s_per_s": round(statistics.median(lib_default), 1),
        "librosa_blas_1_thread_audio_s_per_s": round(statistics.median(lib_blas1), 1),
        "parity_max_abs_err": float(f"{err:.3g}"),
        "parity_max_abs_value": round(scale, 2),
        "torchaudio_default_batched_audio_s_per_s": round(statistics.median(tab), 1),
        "torchaudio_default_per_clip_audio_s_per_s": round(statistics.median(tac), 1),
    }
    settings = {
        "librosa": {**LIBROSA, "call": "librosa.feature.mfcc per clip", "version": librosa.__version__,
                    "baseline": "per repeat, the faster of numpy's default BLAS threads and 1 BLAS thread"},
        "seqlab": {"stage": "MFCC() defaults", "clips_per_call": args.batch},
        "torchaudio": {"transform": "transforms.MFCC(16000, n_mfcc=13, melkwargs=n_fft 512, hop 160, n_mels 40)",
                       "batched": "64 length-sorted clips, zero-padded", "version": torchaudio.__version__},
        "clips": len(clips), "audio_seconds": round(seconds, 1), "corpora": info,
        "repeats": args.repeats, "torch_threads": torch.get_num_threads(),
        # Other processes on a shared machine slow every contender (numpy's BLAS threads and
        # torch's OpenMP threads worst); the load average says how busy it was.
        "load_average_1min": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
        "ratios": [round(x, 3) for x in ratios],
    }
    _common.write_results("features", metrics, settings, budget_s=0, wall_s=time.perf_counter() - wall0, device=device)


if __name__ == "__main__":
    main()
