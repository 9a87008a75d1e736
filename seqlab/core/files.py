"""The folders seqlab writes and the files it reads back: ownership, a lock, a crash-safe commit, safe reads.

Three promises (docs/errors.md, "Files and faults"):

* **Saving never deletes what seqlab did not write.** A save goes only into a new or empty
  folder, or into a folder seqlab already owns (it holds seqlab's lock file, its manifest, or a
  seqlab ``config.json``). Every save records the entries it wrote in ``.seqlab-manifest.json``;
  replacing a model replaces exactly those, and any other file in the folder stays untouched.
  A folder of someone else's files is refused up front (``OutputDirError``).
* **One writer at a time.** ``folder_lock`` takes ``fcntl.flock`` on ``<folder>/.seqlab.lock``
  and writes the holder (pid, host, command, start time) into it; a second writer is refused
  at once with ``FolderLockedError`` naming the holder. The kernel releases the lock when the
  holder dies, so a stale lock never blocks. It is re-entrant within one thread (``seqlab
  train`` holds it for the whole run and ``Pipeline.save`` takes it again inside).
* **A crash at any instruction leaves the old or the new model loadable.** ``model_transaction``
  writes the new files into a hidden staging folder inside the model folder and fsyncs them,
  then commits by atomically writing one small journal (``.seqlab-commit.json``: which entries
  move in, which old ones go). Before the journal exists the old files are untouched; once it
  exists, the new model is the truth: the entries are renamed into place one by one, and a
  reader that finds a journal reads each listed entry from the staging folder while it is still
  there (``ModelFiles``). The next writer (or ``recover``) finishes an interrupted commit, or
  discards an uncommitted staging folder — only folders named by seqlab, inside a folder it owns.

Reading: ``read_regular_bytes`` opens every component below the model folder with
``O_NOFOLLOW`` (``openat`` from the folder down), so a symbolic link anywhere — to
``/etc/passwd``, ``/proc/self/environ``, another model — is refused before a byte is read, and
only regular files are read (a FIFO or a device would block or never end). ``excerpt`` is how an
error quotes a file: short and escaped.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import os
import secrets
import shutil
import socket
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import FolderLockedError, ModelFileError, OutputDirError

LOCK_FILE = ".seqlab.lock"
#: Writers hold it exclusively while they commit (journal written, entries moved); loads hold it shared.
COMMIT_LOCK_FILE = ".seqlab-commit.lock"
MANIFEST_FILE = ".seqlab-manifest.json"
JOURNAL_FILE = ".seqlab-commit.json"
#: The hidden files a model folder keeps between saves (anything else hidden is a leftover of a save).
KEPT_HIDDEN_FILES = (LOCK_FILE, COMMIT_LOCK_FILE, MANIFEST_FILE)
STAGING_PREFIX = ".seqlab-new-"
TRASH_PREFIX = ".seqlab-old-"
MANIFEST_FORMAT = "seqlab.files"
JOURNAL_FORMAT = "seqlab.commit"
SEQLAB_CONFIG_FORMATS = ("seqlab.pipeline", "seqlab.generative")
#: Written by training beside the model; no save replaces or removes them.
RUN_ENTRIES = ("logs", "checkpoints")
#: What a save wrote before manifests existed (pipelines and the generative pipelines).
LEGACY_ENTRIES = ("config.json", "model.safetensors", "stages", "mfcc", "classifier.safetensors", "samples.png")
#: Files a model folder may hold that are not JSON/weights; a config.json larger than this is refused.
MAX_CONFIG_BYTES = 16 * 2**20
MAX_JSON_DEPTH = 64


# -- quoting --------------------------------------------------------------------------------
def excerpt(value: Any, limit: int = 60) -> str:
    """A short, escaped quotation of ``value`` (str or bytes) for an error message.

    >>> excerpt("PATH=/usr/bin\\nHOME=/root" * 10, 12)
    "'PATH=/usr/bi'… (250 chars)"
    """
    if isinstance(value, (bytes, bytearray)):
        text = repr(bytes(value[:limit]))
        return text if len(value) <= limit else f"{text}… ({len(value)} bytes)"
    value = str(value)
    text = repr(value[:limit])
    return text if len(value) <= limit else f"{text}… ({len(value)} chars)"


# -- modes ----------------------------------------------------------------------------------
def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (no race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def default_mode(directory: bool = False) -> int:
    """The mode ``open``/``mkdir`` would give a new file or folder under the umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


# -- reading model files ---------------------------------------------------------------------
_MODEL_ROOT: contextvars.ContextVar[tuple[Path, ...] | None] = contextvars.ContextVar("seqlab_model_root", default=None)


@contextlib.contextmanager
def reading_model(directory: str | Path) -> Iterator[None]:
    """Within this block, ``read_regular_bytes`` reads only regular files inside ``directory``.

    The stage readers (vocabularies, label lists, sentencepiece models, word vectors, CMVN
    statistics) are handed paths; this is how they know which folder they may read from.
    """
    directory = Path(directory)
    roots = (Path(os.path.abspath(directory)), directory.resolve())
    token = _MODEL_ROOT.set(roots)
    try:
        yield
    finally:
        _MODEL_ROOT.reset(token)


def _relative_parts(path: Path, roots: tuple[Path, ...]) -> tuple[Path, tuple[str, ...]]:
    absolute = Path(os.path.abspath(path))
    for root in roots:
        try:
            parts = absolute.relative_to(root).parts
        except ValueError:
            continue
        if parts and ".." not in parts:
            return root, parts
    raise ModelFileError(f"{str(path)!r} lies outside the model folder {str(roots[0])!r}; seqlab reads only files inside it")


def _refusal(path: Path, err: OSError) -> ModelFileError:
    if err.errno in (errno.ELOOP, errno.EMLINK):
        return ModelFileError(f"{str(path)!r} is a symbolic link (or lies under one); seqlab reads only regular files inside the model folder")
    if err.errno == errno.ENOTDIR:
        return ModelFileError(f"{str(path)!r}: a folder on its path is a file or a symbolic link; seqlab reads only regular files inside the model folder")
    if err.errno == errno.ENOENT:
        return ModelFileError(f"{str(path)!r} does not exist")
    return ModelFileError(f"{str(path)!r} cannot be read: {err.strerror or err}")


def open_regular(path: str | Path, root: str | Path | None = None) -> int:
    """A read-only descriptor of ``path``, refused unless it is a regular file reached without links.

    With a model folder (``root``, or the one ``reading_model`` set), every component from the
    folder down is opened with ``O_NOFOLLOW``; without one, the file itself must not be a link.
    """
    path = Path(path)
    roots = (Path(os.path.abspath(root)), Path(root).resolve()) if root is not None else _MODEL_ROOT.get()
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        if roots is None:
            fd = os.open(path, flags)
        else:
            base, parts = _relative_parts(path, roots)
            dir_flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            dfd = os.open(base, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
            try:
                for part in parts[:-1]:
                    nfd = os.open(part, dir_flags, dir_fd=dfd)
                    os.close(dfd)
                    dfd = nfd
                fd = os.open(parts[-1], flags, dir_fd=dfd)
            finally:
                os.close(dfd)
    except OSError as err:
        raise _refusal(path, err) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ModelFileError(f"{str(path)!r} is not a regular file; seqlab reads only regular files inside the model folder")
    return fd


def read_regular_bytes(path: str | Path, root: str | Path | None = None, max_bytes: int | None = None, *, length: int | None = None) -> bytes:
    """The bytes of a regular file inside the model folder (see ``open_regular``).

    ``max_bytes`` refuses larger files before reading them; ``length`` reads only that many bytes.
    """
    fd = open_regular(path, root)
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise ModelFileError(f"{str(path)!r} is {size} bytes, more than the {max_bytes} a file of its kind may hold")
        return handle.read() if length is None else handle.read(length)


def json_depth(value: Any) -> int:
    """The nesting depth of a decoded JSON value, without recursion."""
    depth, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            depth = max(depth, level)
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return depth


def parse_json_bytes(data: bytes, where: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode a JSON file's bytes; a bad or absurdly nested file is a ``ModelFileError``."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{where} is corrupt (not valid UTF-8 JSON): {excerpt(str(err), 100)}") from None
    except RecursionError:
        raise ModelFileError(f"{where} is nested too deeply to be a seqlab file (more than {max_depth} levels)") from None
    if json_depth(value) > max_depth:
        raise ModelFileError(f"{where} is nested too deeply to be a seqlab file (more than {max_depth} levels)")
    return value


def read_json_file(path: str | Path, root: str | Path | None = None, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """A JSON file of a model folder, read with ``read_regular_bytes`` and ``parse_json_bytes``."""
    return parse_json_bytes(read_regular_bytes(path, root, max_bytes), repr(str(path)))


# -- a model folder, as a reader sees it ---------------------------------------------------------
def _simple_name(name: Any) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def _read_journal(directory: Path) -> dict | None:
    """The pending commit of ``directory``, or None (none, or one that is not seqlab's)."""
    path = directory / JOURNAL_FILE
    if not os.path.lexists(path):
        return None
    try:
        journal = read_json_file(path, directory, max_bytes=2**20)
    except ModelFileError:
        return None
    if not isinstance(journal, dict) or journal.get("format") != JOURNAL_FORMAT:
        return None
    staging, trash = journal.get("staging"), journal.get("trash")
    entries, remove = journal.get("entries"), journal.get("remove")
    if not (_simple_name(staging) and staging.startswith(STAGING_PREFIX) and _simple_name(trash) and trash.startswith(TRASH_PREFIX)):
        return None
    if not (isinstance(entries, list) and isinstance(remove, list) and all(map(_simple_name, entries + remove))):
        return None
    return journal


class ModelFiles:
    """Where each entry of a model folder is read from, following an interrupted commit.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> ModelFiles(d).path("stages/00_word/vocab.txt") == d / "stages/00_word/vocab.txt"
    True
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        journal = _read_journal(self.directory) if self.directory.is_dir() else None
        self.staging = self.directory / journal["staging"] if journal else None
        self.pending = set(journal["entries"]) if journal else set()

    def path(self, relative: str | Path) -> Path:
        relative = Path(relative)
        first = relative.parts[0] if relative.parts else ""
        if self.staging is not None and first in self.pending and os.path.lexists(self.staging / first):
            return self.staging / relative
        return self.directory / relative

    @staticmethod
    def state(directory: str | Path) -> tuple:
        """A fingerprint that changes whenever a commit touches ``directory`` (for readers to retry)."""
        out = []
        for name in (JOURNAL_FILE, MANIFEST_FILE, "config.json"):
            try:
                info = os.lstat(Path(directory) / name)
                out.append((info.st_ino, info.st_mtime_ns, info.st_ctime_ns))
            except OSError:
                out.append(None)
        return tuple(out)


def load_consistently(directory: str | Path, load: Callable[[], Any], attempts: int = 20) -> Any:
    """Run ``load`` until no save committed into ``directory`` while it ran.

    A reader racing a writer could otherwise take ``config.json`` and the stage files from one
    save and the weights from the next (both may have the same shapes). Every commit replaces
    the manifest and ``config.json`` and creates and deletes the journal, so a load during which
    none of them changed read one save only. The load holds ``.seqlab-commit.lock`` shared,
    which a writer holds exclusively while it commits, so a writer saving without pause cannot
    starve readers (a folder without that file — read-only, or saved by an older seqlab — is
    read optimistically and retried).
    """
    for _ in range(attempts):
        with _commit_lock(directory, shared=True):
            before = ModelFiles.state(directory)
            try:
                result = load()
            except ModelFileError:
                if ModelFiles.state(directory) == before:
                    raise
                continue
            if ModelFiles.state(directory) == before:
                return result
        time.sleep(0.01)
    raise ModelFileError(f"{str(directory)!r} changed {attempts} times while it was being loaded; another process keeps saving into it")


@contextlib.contextmanager
def _commit_lock(directory: str | Path, shared: bool) -> Iterator[None]:
    """Hold ``<directory>/.seqlab-commit.lock``: exclusively to commit a save, shared to load one.

    The writer creates the file; a reader only opens it (read-only, no link followed) and goes
    on without the lock where it cannot.
    """
    import fcntl

    path = Path(directory) / COMMIT_LOCK_FILE
    nofollow, cloexec = getattr(os, "O_NOFOLLOW", 0), getattr(os, "O_CLOEXEC", 0)
    try:
        if shared:
            fd = os.open(path, os.O_RDONLY | nofollow | cloexec | getattr(os, "O_NONBLOCK", 0))
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                fd = None
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | nofollow | cloexec, default_mode())
    except OSError as err:
        if not shared:
            raise OutputDirError(f"cannot create the lock file {str(path)!r}: {err.strerror or err}") from None
        fd = None
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


# -- ownership -------------------------------------------------------------------------------
def _is_seqlab_config(path: Path) -> bool:
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CONFIG_BYTES:
            return False
        config = read_json_file(path, path.parent)
    except (OSError, ModelFileError):
        return False
    return isinstance(config, dict) and config.get("format") in SEQLAB_CONFIG_FORMATS


def _internal(name: str) -> bool:
    return name in (LOCK_FILE, COMMIT_LOCK_FILE, MANIFEST_FILE, JOURNAL_FILE) or name.startswith((STAGING_PREFIX, TRASH_PREFIX, f".{JOURNAL_FILE}.tmp-", f".{MANIFEST_FILE}.tmp-"))


_RUN_FILES = {"logs": ("metrics.jsonl", "curves.png", "tensorboard"), "checkpoints": ("step-", ".step-")}


def _is_run_output(directory: Path) -> bool:
    """A folder holding nothing but what seqlab's training writes (``logs/``, ``checkpoints/``)."""
    try:
        names = os.listdir(directory)
        if not names or any(n not in _RUN_FILES for n in names):
            return False
        for name in names:
            if not (directory / name).is_dir() or (directory / name).is_symlink():
                return False
            if any(not inner.startswith(_RUN_FILES[name]) for inner in os.listdir(directory / name)):
                return False
    except OSError:
        return False
    return True


def is_seqlab_folder(directory: str | Path, run_output: bool = True) -> bool:
    """Whether ``directory`` is a folder seqlab owns.

    It holds seqlab's lock file, its manifest or a seqlab ``config.json``, or (``run_output``)
    nothing but a training run's ``logs/`` and ``checkpoints/`` (a run stopped before its first save).
    """
    directory = Path(directory)
    return (os.path.lexists(directory / LOCK_FILE) or os.path.lexists(directory / MANIFEST_FILE)
            or _is_seqlab_config(directory / "config.json") or (run_output and _is_run_output(directory)))


def read_manifest(directory: str | Path) -> dict | None:
    """The manifest of the last save into ``directory`` (entries and files it wrote), or None."""
    directory = Path(directory)
    if not os.path.lexists(directory / MANIFEST_FILE):
        return None
    try:
        manifest = read_json_file(directory / MANIFEST_FILE, directory, max_bytes=16 * 2**20)
    except ModelFileError:
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None
    entries, files = manifest.get("entries"), manifest.get("files")
    if not (isinstance(entries, list) and all(map(_simple_name, entries)) and isinstance(files, list) and all(isinstance(f, str) for f in files)):
        return None
    return manifest


def owned_entries(directory: str | Path) -> list[str]:
    """The top-level entries of ``directory`` that the last save wrote (what the next one may replace)."""
    manifest = read_manifest(directory)
    if manifest is not None:
        return [e for e in manifest["entries"] if e != MANIFEST_FILE]
    return [e for e in LEGACY_ENTRIES if os.path.lexists(Path(directory) / e)]


def _files_below(directory: Path, entry: str) -> list[str]:
    root = directory / entry
    if not os.path.lexists(root):
        return []
    if not root.is_dir() or root.is_symlink():
        return [entry]
    found = []
    for base, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(base, d))]:
            found.append(Path(os.path.relpath(os.path.join(base, name), directory)).as_posix())
    return found


def check_output_dir(path: str | Path) -> None:
    """Refuse a folder seqlab must not write a model into; say why and what to give instead.

    Refused: the current directory or a folder holding it, an existing file, a folder inside
    another seqlab model folder, a non-empty folder that is not seqlab's, and a seqlab folder
    with someone else's files inside seqlab's own sub-folders (a save would replace them).
    """
    path = Path(path)
    shown = repr(str(path))
    if os.path.lexists(path) and not path.exists():
        raise OutputDirError(f"{shown} is a symbolic link to nothing; give a folder for the model")
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or cwd.is_relative_to(resolved):
        raise OutputDirError(
            f"{shown} is the current directory{'' if resolved == cwd else ' or holds it'}; seqlab writes a model "
            "into a folder of its own: give a new folder, e.g. runs/NAME"
        )
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"{shown} is a file, not a folder; give a new folder for the model, e.g. runs/NAME")
    for parent in resolved.parents:
        if is_seqlab_folder(parent, run_output=False):  # a model folder, not any folder that holds a logs/
            raise OutputDirError(f"{shown} lies inside {str(parent)!r}, a seqlab model folder; give a folder outside it")
    if not path.exists():
        return
    try:
        names = sorted(os.listdir(path))
    except OSError as err:
        raise OutputDirError(f"{shown} cannot be listed: {err.strerror or err}") from None
    if not names:
        return
    if not is_seqlab_folder(path):
        shown_names = ", ".join(names[:4]) + (f" … ({len(names)} entries)" if len(names) > 4 else "")
        raise OutputDirError(
            f"{shown} is not empty and is not a seqlab model folder (it holds {shown_names}); seqlab will not write "
            "into it, so as not to replace or delete your files: give a new or empty folder, or one seqlab saved a model to"
        )
    manifest = read_manifest(path)
    if manifest is not None and not os.path.lexists(path / JOURNAL_FILE):  # mid-commit, the next writer finishes it first
        known = set(manifest["files"])
        for entry in manifest["entries"]:
            if entry in RUN_ENTRIES:
                continue  # training adds files there between saves
            stray = [f for f in _files_below(path, entry) if f not in known]
            if stray:
                raise OutputDirError(
                    f"{str(path / stray[0])!r} was not written by seqlab, but lies in {entry!r}, which the next save "
                    f"replaces; move it out of the model folder first"
                )


# -- the lock --------------------------------------------------------------------------------
@dataclass
class _Held:
    fd: int
    thread: int
    count: int
    info: dict


_HELD: dict[tuple[int, int], _Held] = {}
_HELD_GUARD = threading.Lock()


def _holder_text(info: dict | None) -> str:
    if not info:
        return "another seqlab process (it has not yet written who it is)"
    since = info.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    command = excerpt(info.get("command", "?"), 120)
    return f"pid {info.get('pid', '?')} on {excerpt(info.get('host', '?'), 40)} ({info.get('purpose', 'writing')}: {command}), since {when}"


def _read_holder(fd: int) -> dict | None:
    for _ in range(25):  # the holder writes who it is just after it takes the lock
        try:
            data = os.pread(fd, 8192, 0)
            info = json.loads(data.decode("utf-8")) if data else None
            if isinstance(info, dict):
                return info
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            pass
        time.sleep(0.02)
    return None


def lock_holder(directory: str | Path) -> dict | None:
    """Who holds (or last held) the lock of ``directory``, as written into its lock file."""
    try:
        fd = open_regular(Path(directory) / LOCK_FILE, directory)
    except ModelFileError:
        return None
    try:
        data = os.pread(fd, 8192, 0)
    finally:
        os.close(fd)
    try:
        info = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return info if isinstance(info, dict) else None


@contextlib.contextmanager
def folder_lock(directory: str | Path, purpose: str = "saving a model") -> Iterator[dict]:
    """Hold ``<directory>/.seqlab.lock`` (``flock``) for the block; re-entrant within one thread.

    A second holder — another process, or another thread of this one — gets
    ``FolderLockedError`` at once, naming the holder. The folder must exist.
    """
    import fcntl

    directory = Path(directory)
    path = directory / LOCK_FILE
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise OutputDirError(f"{str(path)!r} is a symbolic link; seqlab's lock file must be a regular file") from None
        raise OutputDirError(f"cannot create the lock file {str(path)!r}: {err.strerror or err}") from None
    info_now = os.fstat(fd)
    key = (info_now.st_dev, info_now.st_ino)
    me = threading.get_ident()
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            os.close(fd)
            if held.thread != me:
                raise FolderLockedError(f"{str(directory)!r} is in use by another thread of this process ({_holder_text(held.info)})")
            held.count += 1
    if held is None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise OutputDirError(f"cannot lock {str(path)!r}: {err.strerror or err}") from None
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderLockedError(
                f"{str(directory)!r} is in use by {_holder_text(holder)}; wait for it to finish or give another folder"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                "command": " ".join([Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]])[:400],
                "since": time.time()}
        data = json.dumps(info).encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        if os.fstat(fd).st_mode & 0o777 != default_mode():
            with contextlib.suppress(OSError):
                os.fchmod(fd, default_mode())
        held = _Held(fd, me, 1, info)
        with _HELD_GUARD:
            _HELD[key] = held
    try:
        yield held.info
    finally:
        with _HELD_GUARD:
            held.count -= 1
            last = held.count == 0
            if last:
                del _HELD[key]
        if last:
            fcntl.flock(held.fd, fcntl.LOCK_UN)
            os.close(held.fd)


@contextlib.contextmanager
def claim_output_dir(directory: str | Path, purpose: str = "seqlab train", enabled: bool = True) -> Iterator[None]:
    """Check ``directory`` can receive a model, create it and hold its lock for the block.

    ``seqlab train`` claims its output folder before training starts, so a bad ``--output`` or
    a second run into the same folder is refused at once, not after hours of training.
    """
    if not enabled:
        yield
        return
    directory = Path(directory)
    check_output_dir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with folder_lock(directory, purpose):
        recover(directory)
        check_output_dir(directory)  # another process may have written into it meanwhile
        yield


# -- the commit ------------------------------------------------------------------------------
#: Tests set this to a callable(step_name) to stop a save between two steps (a crash).
_crash_point: Callable[[str], None] | None = None
_steps_taken = 0
KILL_ENV = "SEQLAB_TEST_KILL_SAVE_AT"


def kill_at_step(count: int) -> list[str]:
    """For fault tests: this process SIGKILLs itself at the ``count``-th step of its saves from now.

    Returns the list the names of the steps taken are appended to. Call it in a forked child.
    """
    import signal

    global _crash_point
    steps: list[str] = []

    def crash(name: str) -> None:
        steps.append(name)
        if len(steps) == count:
            os.kill(os.getpid(), signal.SIGKILL)

    _crash_point = crash
    return steps


def _step(name: str) -> None:
    """A point between two steps of a save, where a test may kill the process."""
    global _steps_taken
    _steps_taken += 1
    if _crash_point is not None:
        _crash_point(name)
    target = os.environ.get(KILL_ENV)
    if target and target.isdigit() and int(target) == _steps_taken:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(root: Path) -> None:
    for base, dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(base, name), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(Path(base))


def _fresh_dir(parent: Path, prefix: str) -> Path:
    while True:
        path = parent / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            os.mkdir(path)  # the umask's mode, unlike mkdtemp's 0700
            return path
        except FileExistsError:
            continue


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _write_small(path: Path, data: Any) -> None:
    from .serialization import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def _apply(directory: Path, journal: dict) -> None:
    """Move a committed save into place; idempotent, so a crash anywhere is finished by running it again."""
    staging, trash = directory / journal["staging"], directory / journal["trash"]
    if not trash.is_dir():
        os.mkdir(trash)
    for entry in journal["entries"]:
        source, target = staging / entry, directory / entry
        if not os.path.lexists(source):
            continue  # already moved
        if os.path.lexists(target):
            if os.path.lexists(trash / entry):
                _remove(trash / entry)
            os.rename(target, trash / entry)
            _step(f"set aside {entry}")
        os.rename(source, target)
        _step(f"moved in {entry}")
    for entry in journal["remove"]:
        if os.path.lexists(directory / entry):
            if os.path.lexists(trash / entry):
                _remove(trash / entry)
            os.rename(directory / entry, trash / entry)
            _step(f"set aside old {entry}")
    _fsync_dir(directory)
    os.unlink(directory / JOURNAL_FILE)
    _fsync_dir(directory)
    _step("journal removed")
    _remove(trash)
    _remove(staging)
    _step("cleaned")


def recover(directory: str | Path) -> None:
    """Finish a save that was committed but interrupted, and drop one that was not (call under the lock)."""
    directory = Path(directory)
    journal = _read_journal(directory)
    if journal is not None and (directory / journal["staging"]).is_dir():
        with _commit_lock(directory, shared=False):
            _apply(directory, journal)
    elif os.path.lexists(directory / JOURNAL_FILE):
        os.unlink(directory / JOURNAL_FILE)  # nothing left to move, or not seqlab's journal
    for name in os.listdir(directory):
        if name.startswith((STAGING_PREFIX, TRASH_PREFIX, f".{JOURNAL_FILE}.tmp-", f".{MANIFEST_FILE}.tmp-")):
            _remove(directory / name)


@contextlib.contextmanager
def model_transaction(directory: str | Path, purpose: str = "saving a model") -> Iterator[Path]:
    """Yield an empty staging folder; on success its entries replace the model in ``directory``.

    Under the folder's lock: check the folder is seqlab's (or new/empty), finish or discard an
    interrupted save, let the caller fill the staging folder, write the manifest, fsync, commit
    with the journal, move the entries into place. Entries of the previous save that this one
    does not write are removed; every other file in ``directory`` is left alone. An exception
    before the commit leaves the previous model as it was.
    """
    directory = Path(directory)
    check_output_dir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with folder_lock(directory, purpose):
        recover(directory)
        check_output_dir(directory)
        before = set(owned_entries(directory))
        staging = _fresh_dir(directory, STAGING_PREFIX)
        _step("staging created")
        committed, trash = False, None
        try:
            yield staging
            _step("files written")
            entries = sorted(n for n in os.listdir(staging) if n != MANIFEST_FILE)
            clash = [e for e in entries if os.path.lexists(directory / e) and e not in before and e not in RUN_ENTRIES]
            if clash or any(_internal(e) for e in entries):
                raise OutputDirError(
                    f"{str(directory / (clash or entries)[0])!r} exists and was not written by seqlab; "
                    "move it out of the model folder, or save into another folder"
                )
            files = sorted(f for e in entries for f in _files_below(staging, e))
            _write_small(staging / MANIFEST_FILE, {"format": MANIFEST_FORMAT, "version": 1, "entries": entries, "files": files})
            _fsync_tree(staging)
            trash = _fresh_dir(directory, TRASH_PREFIX)
            remove = sorted(e for e in before if e not in entries and e not in RUN_ENTRIES)
            journal = {"format": JOURNAL_FORMAT, "version": 1, "staging": staging.name, "trash": trash.name,
                       "entries": [*entries, MANIFEST_FILE], "remove": remove}
            _step("ready to commit")
            with _commit_lock(directory, shared=False):
                _write_small(directory / JOURNAL_FILE, journal)
                _fsync_dir(directory)
                committed = True
                _step("committed")
                _apply(directory, journal)
        except BaseException:
            if not committed:  # the previous model is untouched: drop what this save wrote
                _remove(staging)
                if trash is not None:
                    _remove(trash)
            raise
