"""The nanoGPT template's data: downloaded from the canonical sources, checked, cached, turned into token files.

Runs on the host before any run of the template (the sandbox has no network): `NanoGPTTemplate.prepare_data`
calls `prepare()` for each dataset of the mode. Per dataset, under the data folder (SCIENTIST_DATA_DIR):

    <data_dir>/shakespeare_char/input.txt       the download, as published (1,115,394 bytes)
    <data_dir>/enwik8/enwik8.zip                (36,445,475 bytes; holds enwik8, 100,000,000 bytes)
    <data_dir>/text8/text8.zip                  (31,344,016 bytes; holds text8, 100,000,000 bytes)
    <data_dir>/<dataset>/{train,val[,test]}.bin one uint8 token per byte, and meta.json: the vocabulary
                                                (the byte of each token) and the token counts

A download goes to `<file>.part`, resumes from where it stopped (an HTTP Range request), and is renamed into place
only once its size and hash are right. The zips are checked again after unpacking (size; text8's SHA-1).
Offline, with nothing cached, `prepare()` raises DataUnavailable: one line naming the file and where to put it.

    python -m scientist_nanogpt.data shakespeare_char enwik8 text8      # prepare into the data folder
    python -m scientist_nanogpt.data --from-file input.txt shakespeare_char   # a copy you already have
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scientist_core import ScientistError

FORMAT = 1  # of the prepared files; a change re-prepares every cache


class DataUnavailable(ScientistError):
    """A dataset can neither be found in the cache nor downloaded and checked."""


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from and how to check it."""

    dataset: str
    url: str
    file: str                       # the download's name under <data_dir>/<dataset>/
    size: int                       # bytes of the download
    sha256: str | None              # of the download, where published
    member: str | None = None       # the file inside the zip; None: the download is the text itself
    content_size: int | None = None  # bytes of the unpacked member
    content_sha1: str | None = None  # of the unpacked member, where published
    # splits: a fraction for train and the rest for val, or token counts (train, val, test)
    train_fraction: float | None = None
    split_counts: tuple[int, int, int] | None = None


SOURCES = {
    "shakespeare_char": Source(
        "shakespeare_char", "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "input.txt", 1_115_394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        train_fraction=0.9),
    "enwik8": Source(
        "enwik8", "http://mattmahoney.net/dc/enwik8.zip", "enwik8.zip", 36_445_475,
        "547994d9980ebed1288380d652999f38a14fe291a6247c157c3d33d4932534bc", member="enwik8",
        content_size=100_000_000, split_counts=(90_000_000, 5_000_000, 5_000_000)),
    "text8": Source(
        "text8", "http://mattmahoney.net/dc/text8.zip", "text8.zip", 31_344_016, None, member="text8",
        content_size=100_000_000, content_sha1="0dc3edebc970dcc96137e7deda4d9995af9d93de",
        split_counts=(90_000_000, 5_000_000, 5_000_000)),
}

def _report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _digest(path: Path, algorithm: str = "sha256") -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def _expected(source: Source) -> str:
    return f"{source.size:,} bytes" + (f", sha256 {source.sha256}" if source.sha256 else "")


def _check_download(source: Source, path: Path) -> str | None:
    """What is wrong with a downloaded (or hand-placed) file, or None."""
    size = path.stat().st_size
    if size != source.size:
        return f"{path} has {size:,} bytes, not {source.size:,}"
    if source.sha256 and (digest := _digest(path)) != source.sha256:
        return f"{path} has sha256 {digest}, not {source.sha256}"
    return None


def prepared(folder: Path, source: Source) -> bool:
    """Whether `folder` holds this dataset's token files, complete (no hashing: cheap before every run)."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        return (meta.get("format") == FORMAT and meta.get("source", {}).get("url") == source.url
                and all((folder / f"{split}.bin").stat().st_size == count for split, count in meta["tokens"].items()))
    except (OSError, ValueError, KeyError, AttributeError):
        return False


def prepare(dataset: str, data_dir: Path, source: Source | None = None, *, timeout_s: float = 60.0) -> Path:
    """Make `<data_dir>/<dataset>/` hold the dataset's token files; returns that folder. Downloads only what is
    missing; raises DataUnavailable (one line: what, and where to put the file) when it cannot."""
    source = source or SOURCES.get(dataset)
    if source is None:
        raise DataUnavailable(f"unknown dataset {dataset!r}", f"choose from {', '.join(SOURCES)}")
    folder = Path(data_dir).expanduser().resolve() / dataset
    if prepared(folder, source):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        if prepared(folder, source):  # another process finished it while this one waited
            return folder
        download = folder / source.file
        if download.is_file():
            problem = _check_download(source, download)
            if problem:
                raise DataUnavailable(f"{dataset}: {problem}",
                                      f"delete it to download it again, or put the right file there ({_expected(source)})")
        else:
            fetch(source, download, timeout_s=timeout_s)
        _tokenize(source, download, folder)
    return folder


@contextlib.contextmanager
def _locked(folder: Path):
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fetch(source: Source, target: Path, *, timeout_s: float = 60.0) -> None:
    """Download `source` to `target` through `target.part`, resuming a partial one; checked, then renamed."""
    import httpx

    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    if have > source.size:
        part.unlink()
        have = 0
    where = (f"put {source.file} ({_expected(source)}, from {source.url}) at {target}")
    if have < source.size:
        _report(f"{source.dataset}: downloading {source.url} ({source.size / 1e6:.1f} MB"
                + (f", resuming at {have / 1e6:.1f} MB)" if have else ")"))
        # identity: byte ranges count the file's own bytes, never those of a compressed transfer
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
        try:
            with httpx.stream("GET", source.url, headers=headers, follow_redirects=True,
                              timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 15.0))) as response:
                if response.status_code == 206 and have:
                    mode = "ab"
                elif response.status_code == 200:
                    mode, have = "wb", 0  # the server ignored the range: start over
                else:
                    raise DataUnavailable(f"{source.dataset}: {source.url} answered HTTP {response.status_code}", where)
                with part.open(mode) as handle:
                    for chunk in response.iter_raw():  # as it arrives: a broken connection keeps every byte
                        handle.write(chunk)
                        have += len(chunk)
                        if have > source.size:
                            break
        except httpx.HTTPError as exc:
            kept = part.stat().st_size if part.is_file() else 0
            resume = f"; {kept:,} bytes kept in {part}, run again to resume" if kept else ""
            raise DataUnavailable(f"{source.dataset}: cannot download {source.url} ({type(exc).__name__}: {exc}"
                                  f"{resume})", f"offline? {where}") from None
    problem = _check_download(source, part)
    if problem:
        part.unlink()
        raise DataUnavailable(f"{source.dataset}: the download is not the published file ({problem}); deleted",
                              f"try again, or {where}")
    os.replace(part, target)
    _report(f"{source.dataset}: {target} downloaded and checked")


def _content(source: Source, download: Path) -> bytes:
    """The text the tokens are made of: the download itself, or the zip's member, checked."""
    if source.member is None:
        return download.read_bytes()
    try:
        with zipfile.ZipFile(download) as archive:
            content = archive.read(source.member)  # zipfile checks the member's CRC-32
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise DataUnavailable(f"{source.dataset}: {download} cannot be unpacked ({exc})",
                              "delete it to download it again") from None
    if source.content_size is not None and len(content) != source.content_size:
        raise DataUnavailable(f"{source.dataset}: {source.member} in {download} has {len(content):,} bytes, not "
                              f"{source.content_size:,}", "delete the zip to download it again")
    if source.content_sha1 and (digest := hashlib.sha1(content).hexdigest()) != source.content_sha1:
        raise DataUnavailable(f"{source.dataset}: {source.member} in {download} has sha1 {digest}, not "
                              f"{source.content_sha1}", "delete the zip to download it again")
    return content


def _tokenize(source: Source, download: Path, folder: Path) -> None:
    """Write the token files and, last, meta.json: the vocabulary is the sorted set of bytes of the text."""
    content = np.frombuffer(_content(source, download), dtype=np.uint8)
    vocab = np.flatnonzero(np.bincount(content, minlength=256))
    lookup = np.zeros(256, dtype=np.uint8)
    lookup[vocab] = np.arange(len(vocab), dtype=np.uint8)
    tokens = lookup[content]
    if source.split_counts is not None:
        if sum(source.split_counts) != len(tokens):
            raise DataUnavailable(f"{source.dataset}: {len(tokens):,} tokens cannot be split "
                                  f"{'/'.join(map(str, source.split_counts))}", "delete the download to fetch it again")
        train, val, _ = np.cumsum(source.split_counts)
        splits = {"train": tokens[:train], "val": tokens[train:val], "test": tokens[val:]}
    else:
        cut = int(len(tokens) * source.train_fraction)
        splits = {"train": tokens[:cut], "val": tokens[cut:]}
    for split, values in splits.items():
        part = folder / f"{split}.bin.part"
        values.tofile(part)
        os.replace(part, folder / f"{split}.bin")
    meta = {"format": FORMAT, "dataset": source.dataset, "vocab": vocab.tolist(),
            "tokens": {split: len(values) for split, values in splits.items()},
            "source": {"url": source.url, "file": source.file, "bytes": source.size,
                       "sha256": source.sha256 or _digest(download)}}
    part = folder / "meta.json.part"
    part.write_text(json.dumps(meta) + "\n")
    os.replace(part, folder / "meta.json")


def install_copy(dataset: str, path: Path, data_dir: Path, source: Source | None = None) -> Path:
    """Put a copy of the dataset's download that you already have into the cache, after checking it (against
    `source`, by default the published file)."""
    source = source or SOURCES[dataset]
    problem = _check_download(source, Path(path))
    if problem:
        raise DataUnavailable(f"{dataset}: {problem}", f"the published file is {source.url} ({_expected(source)})")
    folder = Path(data_dir).expanduser().resolve() / dataset
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / (source.file + ".part")
    shutil.copyfile(path, part)
    os.replace(part, folder / source.file)
    return folder / source.file


def default_data_dir() -> Path:
    from scientist_core import load_settings

    return Path(load_settings().data_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scientist_nanogpt.data",
                                     description="Download, check and tokenize the nanogpt template's datasets.")
    parser.add_argument("datasets", nargs="+", choices=list(SOURCES))
    parser.add_argument("--data-dir", type=Path, help="default: scientist's data folder (SCIENTIST_DATA_DIR)")
    parser.add_argument("--from-file", type=Path, help="a copy of the download you already have (one dataset)")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    try:
        if args.from_file:
            if len(args.datasets) != 1:
                parser.error("--from-file takes exactly one dataset")
            install_copy(args.datasets[0], args.from_file, data_dir)
        for dataset in args.datasets:
            folder = prepare(dataset, data_dir)
            meta = json.loads((folder / "meta.json").read_text())
            counts = ", ".join(f"{split} {count:,}" for split, count in meta["tokens"].items())
            print(f"{dataset}: {folder} ({counts} tokens, vocabulary {len(meta['vocab'])})")
    except ScientistError as exc:
        raise SystemExit(f"Error: {exc.one_line()}") from None


if __name__ == "__main__":
    main()
