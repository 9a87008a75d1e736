"""File faults: does seqlab lose a model, read outside a model folder, or let writers collide?

Not a training benchmark: it attacks the files (issue #15, "Trust") and counts what holds.

* **Crafted folders** (``crafted_tried`` / ``crafted_refused``): copies of a tiny saved model
  with one thing made hostile each — ``config.json``, ``model.safetensors``, ``vocab.txt``,
  ``labels.txt`` or a whole stage folder replaced by a symbolic link (to the same file of
  another valid model, to a canary file outside, to ``/proc/self/environ``), a FIFO, a folder
  where a file belongs, a stage ``dir`` of ``../``, a config describing gigabytes
  (``hidden_size: 12000``, ``vocab_size: 2**50``), NaN/inf weights, a 100,000-deep
  ``config.json``, a pickle, truncated weights, an absurd header, a vocabulary line of 10 kB
  holding a secret. All are loaded in one subprocess with ``seqlab.load``; refused means a
  ``ModelFileError`` whose message quotes neither the secret nor the environment.
* **bytes_read_outside**: every link target is a canary whose access time is wound back to
  1970 before each load (the file system moves it on any read, ``relatime`` included); an audit
  hook (``sys.addaudithook``, ``open`` events) in the loader also records every file opened by
  path. The figure is the bytes of every target that either shows was read (must be 0).
* **refusal_peak_rss_mb**: peak resident size of a fresh process refusing the
  ``hidden_size: 12000`` folder (``RUSAGE_CHILDREN`` of a small launcher, so nothing is
  inherited from this process; the process leaves with ``os._exit`` once refused, as the
  interpreter's teardown of torch alone peaks ~120 MB higher), beside the same figure for
  importing torch alone and for loading the genuine model: imports dominate all three.
* **save_kills / save_kills_loadable**: a forked process saving model B over model A is
  SIGKILLed at every step of the save in turn, then ``--random-kills`` times at a random moment
  while it saves A and B alternately; after each kill the folder must load as exactly A or
  exactly B, and the next save must finish and leave no hidden leftovers.
* **concurrent_writers / concurrent_refused**: ``--writers`` processes each saving
  ``--saves`` times into one folder, plus two ``seqlab train`` runs started together into one
  ``--output``; every attempt must either win or get seqlab's lock error (never another
  exception), and the model and ``logs/metrics.jsonl`` must come out whole. Then
  ``concurrent_reads`` loads race a process replacing the model with A, B, A, …; each must
  return all of A or all of B (``concurrent_reads_whole``).
* **resume_cycles / resume_identical**: ``benchmarks/_faults_resume.py`` (kill-and-resume of
  ``seqlab train``; null when that module is absent).

    python benchmarks/faults.py [--random-kills 60] [--writers 4] [--saves 500] [--reads 40] [--resume-cycles 2] [--seed 0]

About 4-5 minutes on one core (half of it the resume cycles). Writes benchmarks/results/faults.json.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SECRET = "CANARY-SECRET-5e1d77"

# The loader: every crafted folder through seqlab.load, with an audit hook on open().
LOADER = r"""
import json, os, sys
cases = json.loads(open(sys.argv[1]).read())
with open("/proc/self/environ", "rb") as handle:
    environ = handle.read(4096)
opened = []
def hook(event, args):
    # (path, mode, flags): os.open and open() by path. With O_NOFOLLOW on a link the kernel
    # refuses the open, so such an attempt reads nothing and is not counted below.
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        opened.append((os.fsdecode(args[0]), args[2] if len(args) > 2 and isinstance(args[2], int) else 0))
sys.addaudithook(hook)
import seqlab
from seqlab.core.errors import ModelFileError, SeqlabError
results = []
for case in cases:
    for target in case["targets"]:
        if os.path.isfile(target) and not target.startswith("/proc/"):
            os.utime(target, (0, os.stat(target).st_mtime))
    del opened[:]
    outcome, message = "loaded", ""
    try:
        pipe = seqlab.load(case["folder"], device="cpu")
        message = repr(pipe(["good film"]))[:200]
    except ModelFileError as err:
        outcome, message = "refused", str(err)
    except SeqlabError as err:
        outcome, message = "other seqlab error " + type(err).__name__, str(err)
    except BaseException as err:
        outcome, message = "crashed " + type(err).__name__, str(err)[:300]
    env_leak = any(chunk and chunk.decode(errors="replace") in message for chunk in environ.split(b"\0")[:20] if len(chunk) > 8)
    paths = [p for p, flags in opened if os.path.isabs(p) and not (flags & os.O_NOFOLLOW and os.path.islink(p))]
    results.append({"name": case["name"], "outcome": outcome, "message": message[:400], "message_len": len(message),
                    "secret_in_message": "%s" in message, "environ_in_message": env_leak,
                    "opened_targets": sorted({os.path.realpath(p) for p in paths} & {os.path.realpath(t) for t in case["targets"]})})
    for target in case["targets"]:
        results[-1].setdefault("atimes", {})[target] = os.stat(target).st_atime if os.path.isfile(target) and not target.startswith("/proc/") else None
print(json.dumps(results))
""" % SECRET

LAUNCHER = """
import resource, subprocess, sys
child = subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], capture_output=True, text=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, child.returncode, child.stdout.strip()[-300:].replace(chr(10), " "))
"""
# Leaves with os._exit once done: the interpreter's teardown of torch alone peaks ~120 MB above
# the import (measured here), whatever was loaded, and is no part of loading or refusing.
LOAD_ONE = """
import os, sys, seqlab
from seqlab.core.errors import ModelFileError
try:
    seqlab.load(sys.argv[1], device="cpu")
    print("loaded")
except ModelFileError as err:
    print("refused:", str(err)[:150])
sys.stdout.flush()
os._exit(0)
"""

RECIPE = """\
task: sentiment
data: {{train: {repo}/corpora/sentiment/train.tsv, dev: {repo}/corpora/sentiment/dev.tsv, text_column: sentence, label_column: label, limit_train: 64}}
model: {{embedding_dim: 8, hidden_size: 8}}
train: {{epochs: 3, batch_size: 8, progress: "off"}}
output: {output}
device: cpu
examples: []
"""


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(_common.REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# -- models ---------------------------------------------------------------------------------------
def tiny_pipeline(which: str, seed: int):
    import torch

    from seqlab.pipeline import Pipeline
    from seqlab.text.labels import LabelEncoder
    from seqlab.text.tokenizers import WordTokenizer
    from seqlab.text.vocab import VocabularyStage

    texts = {"a": ["good film", "bad film", "great plot", "awful acting"], "b": ["superb story", "dull story", "brilliant cast", "boring cast", "fine"]}[which]
    labels = [1, 0, 1, 0, 1][: len(texts)]
    torch.manual_seed(seed)
    pipe = Pipeline([WordTokenizer(), VocabularyStage(), LabelEncoder()], task="sentiment", device="cpu",
                    model_config={"embedding_dim": 4, "hidden_size": 4})
    pipe.fit({"text": texts * 3, "label": labels * 3}, train_config={"epochs": 1, "progress": "off", "seed": seed})
    return pipe


def fingerprint(pipe) -> str:
    import hashlib

    digest = hashlib.sha256()
    for stage in pipe.stages:
        vocab = getattr(stage, "vocab", None)
        digest.update(repr(list(vocab) if vocab is not None else []).encode())
        digest.update(repr(list(getattr(stage, "labels", None) or [])).encode())
    for name, tensor in sorted(pipe.model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().contiguous().view(-1).view(__import__("torch").uint8).numpy().tobytes())
    return digest.hexdigest()


def leftovers(folder: Path) -> list[str]:
    from seqlab.core.files import KEPT_HIDDEN_FILES

    return sorted(n for n in os.listdir(folder) if n.startswith(".") and n not in KEPT_HIDDEN_FILES)


# -- crafted folders --------------------------------------------------------------------------------
def craft(model: Path, twin: Path, work: Path) -> list[dict]:
    """Copies of ``model``, each with one hostile change; returns the loader's case list."""
    from safetensors.torch import load_file, save_file

    cases = []

    def copy(name: str) -> Path:
        folder = work / "crafted" / name
        shutil.copytree(model, folder)
        return folder

    def link(folder: Path, relative: str, target) -> None:
        path = folder / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.symlink(target, path)

    files = {"config": "config.json", "weights": "model.safetensors", "vocab": "stages/01_vocabulary/vocab.txt",
             "labels": "stages/02_label_encoder/labels.txt", "stage_dir": "stages/01_vocabulary"}
    for key, relative in files.items():
        for kind in ("twin", "canary", "environ"):
            if kind == "environ" and key == "stage_dir":
                continue
            name = f"link_{key}_to_{kind}"
            folder = copy(name)
            if kind == "twin":
                target = work / "outside" / name / "twin"
                shutil.copytree(twin, target)
                target = target / relative
            elif kind == "canary":
                target = work / "outside" / name / Path(relative).name
                source = model / relative
                if source.is_dir():
                    shutil.copytree(source, target)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    data = source.read_bytes() if key != "config" else json.dumps({"format": SECRET}).encode()
                    target.write_bytes(data)
            else:
                target = Path("/proc/self/environ")
            link(folder, relative, target)
            targets = [str(p) for p in (target.rglob("*") if target.is_dir() else [target]) if not p.is_dir()]
            cases.append({"name": name, "folder": str(folder), "targets": targets})

    def case(name: str, change) -> None:
        folder = copy(name)
        change(folder)
        cases.append({"name": name, "folder": str(folder), "targets": []})

    def edit_config(change):
        def apply(folder: Path) -> None:
            config = json.loads((folder / "config.json").read_text())
            change(config)
            (folder / "config.json").write_text(json.dumps(config))
        return apply

    def fifo(folder: Path) -> None:
        (folder / files["vocab"]).unlink()
        os.mkfifo(folder / files["vocab"])

    def config_dir(folder: Path) -> None:
        (folder / "config.json").unlink()
        (folder / "config.json").mkdir()

    def weights(value: float):
        def apply(folder: Path) -> None:
            state = load_file(folder / "model.safetensors")
            name = sorted(n for n in state if "weight" in n)[0]
            state[name] = state[name].clone()
            state[name].view(-1)[0] = value
            save_file(state, folder / "model.safetensors")
        return apply

    def deep(folder: Path) -> None:
        (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)

    def pickled(folder: Path) -> None:
        import pickle

        (folder / "model.safetensors").write_bytes(pickle.dumps({"w": [1, 2, 3]}))

    def truncated(folder: Path) -> None:
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])

    def absurd_header(folder: Path) -> None:
        header = json.dumps({"embedding.weight": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 16]}}).encode()
        (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)

    def long_line(folder: Path) -> None:
        vocab = folder / files["vocab"]
        # The secret lies 200 characters in: a short excerpt of the line cannot reach it.
        vocab.write_text(vocab.read_text() + "\\q" + "x" * 200 + SECRET + "x" * 10_000 + "\n")

    case("fifo_vocab", fifo)
    case("config_is_a_folder", config_dir)
    case("stage_dir_parent", edit_config(lambda c: c["stages"][1].update(dir="../../outside")))
    case("hidden_size_12000", edit_config(lambda c: c["model"].update(hidden_size=12000)))
    case("vocab_size_2e50", edit_config(lambda c: c["model"].update(vocab_size=2**50)))
    case("nan_weight", weights(float("nan")))
    case("inf_weight", weights(float("inf")))
    case("config_100000_deep", deep)
    case("pickle_weights", pickled)
    case("truncated_weights", truncated)
    case("absurd_header", absurd_header)
    case("vocab_line_10kB_with_secret", long_line)
    return cases


def run_crafted(model: Path, twin: Path, work: Path) -> tuple[dict, list[dict]]:
    cases = craft(model, twin, work)
    probe = work / "probe"
    probe.write_text("x")
    os.utime(probe, (0, probe.stat().st_mtime))
    probe.read_bytes()
    atime_works = probe.stat().st_atime > 0
    listing = work / "cases.json"
    listing.write_text(json.dumps(cases))
    done = subprocess.run([sys.executable, "-c", LOADER, str(listing)], capture_output=True, text=True, env=env(), timeout=600)
    if done.returncode != 0:
        sys.exit(f"the crafted-folder loader failed: {done.stderr[-2000:]}")
    results = json.loads(done.stdout.strip().splitlines()[-1])
    outside = 0
    for result in results:
        read = set(result["opened_targets"])
        read |= {t for t, atime in result.get("atimes", {}).items() if atime is not None and atime > 0}
        result["targets_read"] = sorted(read)
        outside += sum(os.path.getsize(t) if os.path.exists(t) and not t.startswith("/proc/") else 1 for t in read)
        result["ok"] = (result["outcome"] == "refused" and not result["secret_in_message"] and not result["environ_in_message"]
                        and not read)
    metrics = {
        "crafted_tried": len(results),
        "crafted_refused": sum(r["ok"] for r in results),
        "bytes_read_outside": outside if atime_works else None,
        "crafted_longest_message_chars": max(r["message_len"] for r in results),
    }
    return metrics, results


def peak_rss(model: Path, work: Path) -> dict:
    bomb = work / "crafted" / "hidden_size_12000"

    def measure(code: str, *args: str) -> tuple[int, str]:
        out = subprocess.run([sys.executable, "-c", LAUNCHER, code, *args], capture_output=True, text=True, env=env(), timeout=600)
        peak, _, rest = out.stdout.strip().partition(" ")
        return int(peak), rest

    refusal, outcome = measure(LOAD_ONE, str(bomb))
    if "refused" not in outcome:
        print(f"warning: the hidden_size 12000 folder was not refused: {outcome}")
    baseline = measure("import os, torch; os._exit(0)")[0]
    return {
        "refusal_peak_rss_mb": refusal,
        "refusal_refused": "refused" in outcome,
        "normal_load_peak_rss_mb": measure(LOAD_ONE, str(model))[0],
        "import_torch_peak_rss_mb": baseline,
        "refusal_peak_above_import_torch_mb": refusal - baseline,
    }


# -- kills ---------------------------------------------------------------------------------------------
def _fork(child) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            child()
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(3)
    return pid


def save_kills(a, b, fa: str, fb: str, work: Path, random_kills: int, seed: int) -> dict:
    import seqlab
    import seqlab.core.files as files

    rng = random.Random(seed)
    stats = {"save_kills": 0, "save_kills_loadable": 0, "save_kills_recovered": 0, "save_kill_steps": 0}
    base = work / "kills"
    base.mkdir()

    def check(folder: Path) -> None:
        stats["save_kills"] += 1
        try:
            got = fingerprint(seqlab.load(folder, device="cpu"))
        except Exception:  # noqa: BLE001
            got = None
        stats["save_kills_loadable"] += got in (fa, fb)
        a.save(folder)
        stats["save_kills_recovered"] += fingerprint(seqlab.load(folder, device="cpu")) == fa and not leftovers(folder)

    k = 0
    while True:  # every step of a replacing save
        k += 1
        folder = base / f"step{k}"
        a.save(folder)

        def die_at_step(k=k, folder=folder):
            files.kill_at_step(k)
            b.save(folder)

        _, status = os.waitpid(_fork(die_at_step), 0)
        if not os.WIFSIGNALED(status):
            stats["save_kill_steps"] = k - 1
            break
        check(folder)
    # Random moments: the child saves A and B in turn until killed.
    started = time.perf_counter()
    a.save(base / "timing")
    save_s = time.perf_counter() - started
    for i in range(random_kills):
        folder = base / f"random{i}"
        a.save(folder)

        def keep_saving(folder=folder):
            while True:
                b.save(folder)
                a.save(folder)

        pid = _fork(keep_saving)
        time.sleep(rng.uniform(0, 3 * save_s))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        check(folder)
    stats["save_s"] = round(save_s, 4)
    return stats


def concurrent(pipe, fp: str, work: Path, writers: int, saves: int, reads_n: int) -> dict:
    import seqlab
    from seqlab.core.errors import FolderLockedError

    folder = work / "shared"
    report = work / "writers"
    report.mkdir()

    def writer(index: int) -> None:
        counts = {"won": 0, "refused": 0, "other": []}
        for _ in range(saves):
            try:
                pipe.save(folder)
                counts["won"] += 1
            except FolderLockedError:
                counts["refused"] += 1
            except BaseException as err:  # noqa: BLE001
                counts["other"].append(f"{type(err).__name__}: {str(err)[:200]}")
        (report / f"{index}.json").write_text(json.dumps(counts))

    started = time.perf_counter()
    pids = [_fork(lambda i=i: writer(i)) for i in range(writers)]
    for pid in pids:
        os.waitpid(pid, 0)
    writers_s = time.perf_counter() - started
    counts = [json.loads((report / f"{i}.json").read_text()) for i in range(writers)]
    intact = fingerprint(seqlab.load(folder, device="cpu")) == fp and not leftovers(folder)
    # Readers while a writer replaces the model (A, B, A, …): each load must be all A or all B.
    other_pipe = tiny_pipeline("b", 1)
    whole = {fp, fingerprint(other_pipe)}
    pid = _fork(lambda: [(other_pipe.save(folder), pipe.save(folder)) for _ in iter(int, 1)])
    reads = []
    for _ in range(reads_n):
        try:
            reads.append(fingerprint(seqlab.load(folder, device="cpu")) in whole)
        except Exception:  # noqa: BLE001
            reads.append(False)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    # Two `seqlab train` runs into one --output, started together.
    recipe = work / "race.yaml"
    recipe.write_text(RECIPE.format(repo=_common.REPO, output=work / "race"))
    runs = [subprocess.Popen([sys.executable, "-m", "seqlab", "train", str(recipe)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env()) for _ in range(2)]
    outcomes = [(run.wait(timeout=900), *run.communicate()) for run in runs]
    train_won = sum(code == 0 and "saved to" in out for code, out, _ in outcomes)
    train_refused = sum(code == 2 and err.startswith("seqlab train: ") and "in use by pid" in err for code, _, err in outcomes)
    try:
        lines = (work / "race" / "logs" / "metrics.jsonl").read_text().splitlines()
        torn = sum(1 for line in lines if not _is_json(line))
        seqlab.load(work / "race", device="cpu")
        race_intact = torn == 0 and not leftovers(work / "race")
    except Exception:  # noqa: BLE001
        race_intact = False
    other = [e for c in counts for e in c["other"]] + [err[-300:] for code, _, err in outcomes if code not in (0, 2)]
    return {
        "concurrent_writers": writers * saves + len(runs),
        "concurrent_won": sum(c["won"] for c in counts) + train_won,
        "concurrent_refused": sum(c["refused"] for c in counts) + train_refused,
        "concurrent_other_errors": len(other),
        "concurrent_model_intact": intact and race_intact,
        "concurrent_train_exit_codes": sorted(code for code, _, _ in outcomes),
        "concurrent_writers_s": round(writers_s, 1),
        "concurrent_reads": len(reads),
        "concurrent_reads_whole": sum(reads),
        "_other": other[:5],
    }


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def resume(n: int, seed: int, work: Path) -> dict:
    try:
        from _faults_resume import resume_cycles
    except ImportError:
        return {"resume_cycles": None, "resume_identical": None,
                "resume_note": "benchmarks/_faults_resume.py is not on this branch (written by the trust-misc helper)"}
    if n <= 0:
        return {"resume_cycles": None, "resume_identical": None, "resume_note": "skipped (--resume-cycles 0)"}
    out = resume_cycles(n, seed, work)
    return {"resume_cycles": out["resume_cycles"], "resume_identical": out["resume_identical"], "resume_by_mode": out.get("by_mode")}


def main() -> None:
    p = _common.parser("File faults: crafted model folders, kills during saves, concurrent writers", budget_min=0)
    p.add_argument("--random-kills", type=int, default=60, help="kills at random moments (besides one per save step)")
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--saves", type=int, default=500, help="saves per writer (4 × 500: the reported 2,000)")
    p.add_argument("--reads", type=int, default=40, help="loads racing a writer")
    p.add_argument("--resume-cycles", type=int, default=2, help="kill-and-resume cycles (benchmarks/_faults_resume.py)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    args = p.parse_args()
    start = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="seqlab-faults-"))
    a, b = tiny_pipeline("a", args.seed), tiny_pipeline("b", args.seed + 1)
    a.save(work / "A")
    b.save(work / "B")
    fa, fb = fingerprint(a), fingerprint(b)
    metrics: dict = {}
    print("crafted folders …", flush=True)
    crafted, results = run_crafted(work / "A", work / "B", work)
    metrics.update(crafted)
    for r in results:
        if not r["ok"]:
            print(f"  NOT REFUSED SAFELY: {r['name']}: {r['outcome']}: {r['message'][:160]!r} read={r['targets_read']}")
    print("peak RSS while refusing …", flush=True)
    metrics.update(peak_rss(work / "A", work))
    print("kills during saves …", flush=True)
    metrics.update(save_kills(a, b, fa, fb, work, args.random_kills, args.seed))
    print("concurrent writers …", flush=True)
    conc = concurrent(a, fa, work, args.writers, args.saves, args.reads)
    for line in conc.pop("_other"):
        print(f"  RAW ERROR: {line}")
    metrics.update(conc)
    print("kill-and-resume cycles …", flush=True)
    res = resume(args.resume_cycles, args.seed, work / "resume")
    note = res.pop("resume_note", None)
    by_mode = res.pop("resume_by_mode", None)
    metrics.update(res)
    wall = time.perf_counter() - start
    settings = {"random_kills": args.random_kills, "writers": args.writers, "saves_per_writer": args.saves, "reads": args.reads,
                "resume_cycles": args.resume_cycles, "seed": args.seed, "threads": 1,
                "crafted_cases": [{k: r[k] for k in ("name", "outcome", "targets_read")} for r in results]}
    if note:
        settings["resume_note"] = note
    if by_mode is not None:
        settings["resume_by_mode"] = by_mode
    _common.write_results("faults", metrics, settings, budget_s=0, wall_s=wall, device=torch.device("cpu"))
    if args.keep:
        print(f"work folder: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
