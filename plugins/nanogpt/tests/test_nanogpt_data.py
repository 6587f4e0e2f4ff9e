"""The nanogpt template's data: downloads from a loopback HTTP server (resumed, checked, rejected), the offline
message, the token files of every kind of source, the cache, and the core's hook that prepares them for runs."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import socket
import zipfile
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest

from scientist_core.testing.loopback import LoopbackServer
from scientist_nanogpt import data
from scientist_nanogpt.data import DataUnavailable, Source
from scientist_nanogpt.plugin import NanoGPTTemplate
from scientist_nanogpt.testing import EXCERPT, EXCERPT_SHA256, EXCERPT_SIZE, excerpt_source, seed_shakespeare


class FileServer(LoopbackServer):
    """Serves `files` by path, honours `Range: bytes=N-` with 206, and can drop the connection after
    `cut_after` bytes of a reply, like a network that fails mid-download."""

    thread_name = "nanogpt-files"

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__()
        self.files = files
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: int | None = None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                asked = self.headers.get("Range")
                server.requests.append((self.path, asked))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1)) if asked else 0
                self.send_response(206 if asked else 200)
                if asked:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if server.cut_after is not None:
                    payload = payload[:server.cut_after]
                    self.close_connection = True
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        return Handler


def zipped(member: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, content)
    return buffer.getvalue()


# a small stand-in for enwik8: random bytes, so the zip barely compresses and the download takes a few chunks
CONTENT = np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
ZIP = zipped("enwik8", CONTENT)


def small_enwik8(url: str, **changes) -> Source:
    values = dict(dataset="enwik8", url=url, file="enwik8.zip", size=len(ZIP), sha256=hashlib.sha256(ZIP).hexdigest(),
                  member="enwik8", content_size=len(CONTENT), split_counts=(2_700_000, 150_000, 150_000))
    return Source(**{**values, **changes})


@pytest.fixture
def server():
    with FileServer({"/enwik8.zip": ZIP}) as running:
        yield running


def closed_port_url(path: str) -> str:
    with socket.socket() as sock:  # a port that nothing listens on: connection refused, as offline
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


# -- downloads ------------------------------------------------------------------------------------------------------

def test_a_zip_is_downloaded_checked_unpacked_and_split(server, tmp_path):
    folder = data.prepare("enwik8", tmp_path, small_enwik8(f"{server.url}/enwik8.zip"))
    assert folder == tmp_path.resolve() / "enwik8"
    assert (folder / "enwik8.zip").read_bytes() == ZIP and not (folder / "enwik8.zip.part").exists()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["tokens"] == {"train": 2_700_000, "val": 150_000, "test": 150_000}
    vocab = meta["vocab"]
    assert vocab == sorted(set(CONTENT))
    decoded = b"".join(bytes(np.asarray(vocab, dtype=np.uint8)[np.fromfile(folder / f"{split}.bin", dtype=np.uint8)])
                       for split in ("train", "val", "test"))
    assert decoded == CONTENT  # in order: train is the first 90%, then val, then test
    assert server.requests == [("/enwik8.zip", None)]


def test_a_prepared_dataset_is_not_fetched_again(server, tmp_path):
    source = small_enwik8(f"{server.url}/enwik8.zip")
    data.prepare("enwik8", tmp_path, source)
    data.prepare("enwik8", tmp_path, source)
    assert len(server.requests) == 1


def test_a_broken_download_resumes_where_it_stopped(server, tmp_path):
    source = small_enwik8(f"{server.url}/enwik8.zip")
    server.cut_after = 1_000_000
    with pytest.raises(DataUnavailable, match="run again to resume") as caught:
        data.prepare("enwik8", tmp_path, source)
    part = tmp_path / "enwik8" / "enwik8.zip.part"
    assert part.stat().st_size == 1_000_000 and not (tmp_path / "enwik8" / "enwik8.zip").exists()
    assert "\n" not in caught.value.one_line()
    server.cut_after = None
    data.prepare("enwik8", tmp_path, source)
    assert server.requests[-1] == ("/enwik8.zip", "bytes=1000000-")
    assert (tmp_path / "enwik8" / "enwik8.zip").read_bytes() == ZIP and not part.exists()


def test_a_server_that_ignores_the_range_starts_the_file_over(tmp_path):
    class NoRanges(FileServer):
        def _handler_class(self):
            handler = super()._handler_class()

            class IgnoreRange(handler):
                def do_GET(self):
                    del self.headers["Range"]
                    super().do_GET()

            return IgnoreRange

    with NoRanges({"/enwik8.zip": ZIP}) as running:
        (tmp_path / "enwik8").mkdir()
        (tmp_path / "enwik8" / "enwik8.zip.part").write_bytes(b"x" * 1000)  # not even the right bytes
        data.prepare("enwik8", tmp_path, small_enwik8(f"{running.url}/enwik8.zip"))
    assert (tmp_path / "enwik8" / "enwik8.zip").read_bytes() == ZIP


def test_a_download_with_the_wrong_hash_is_rejected_and_deleted(tmp_path):
    impostor = bytearray(ZIP)
    impostor[100] ^= 0xFF  # same size, one byte off
    with FileServer({"/enwik8.zip": bytes(impostor)}) as running:
        with pytest.raises(DataUnavailable, match="not the published file.*sha256") as caught:
            data.prepare("enwik8", tmp_path, small_enwik8(f"{running.url}/enwik8.zip"))
    folder = tmp_path / "enwik8"
    assert not (folder / "enwik8.zip").exists() and not (folder / "enwik8.zip.part").exists()
    assert not (folder / "meta.json").exists()
    assert "\n" not in caught.value.one_line()


def test_unpacked_content_is_checked_too(server, tmp_path):
    source = small_enwik8(f"{server.url}/enwik8.zip", content_sha1="0" * 40)
    with pytest.raises(DataUnavailable, match="sha1"):
        data.prepare("enwik8", tmp_path, source)
    assert not (tmp_path / "enwik8" / "meta.json").exists()


def test_offline_says_in_one_line_where_to_put_the_file(tmp_path):
    source = data.SOURCES["shakespeare_char"]
    offline = dataclasses.replace(source, url=closed_port_url("/input.txt"))
    with pytest.raises(DataUnavailable) as caught:
        data.prepare("shakespeare_char", tmp_path, offline)
    line = caught.value.one_line()
    assert "\n" not in line
    assert f"put input.txt (1,115,394 bytes, sha256 {source.sha256}" in line
    assert f"at {tmp_path.resolve() / 'shakespeare_char' / 'input.txt'}" in line
    assert not list((tmp_path / "shakespeare_char").glob("*.bin"))


def test_a_wrong_file_put_in_place_by_hand_is_reported_not_deleted(tmp_path):
    folder = tmp_path / "shakespeare_char"
    folder.mkdir()
    (folder / "input.txt").write_text("To be, or not to be\n")
    with pytest.raises(DataUnavailable, match="has 20 bytes, not 1,115,394.*delete it"):
        data.prepare("shakespeare_char", tmp_path)
    assert (folder / "input.txt").read_text() == "To be, or not to be\n"


def test_unknown_dataset(tmp_path):
    with pytest.raises(DataUnavailable, match="unknown dataset 'ptb'"):
        data.prepare("ptb", tmp_path)


def test_the_canonical_sources_are_the_published_ones():
    shakespeare, enwik8, text8 = (data.SOURCES[name] for name in ("shakespeare_char", "enwik8", "text8"))
    assert shakespeare.url == "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
    assert (shakespeare.size, shakespeare.train_fraction) == (1_115_394, 0.9)
    assert (enwik8.url, enwik8.size, enwik8.content_size) == ("http://mattmahoney.net/dc/enwik8.zip", 36_445_475,
                                                              100_000_000)
    assert enwik8.sha256 == "547994d9980ebed1288380d652999f38a14fe291a6247c157c3d33d4932534bc"
    assert (text8.url, text8.size, text8.content_sha1) == ("http://mattmahoney.net/dc/text8.zip", 31_344_016,
                                                           "0dc3edebc970dcc96137e7deda4d9995af9d93de")
    assert enwik8.split_counts == text8.split_counts == (90_000_000, 5_000_000, 5_000_000)


# -- tiny Shakespeare as the tests seed it: the excerpt in the package, through the loader ---------------------------

def test_the_excerpt_is_installed_checked_and_split_90_10(tmp_path):
    folder = seed_shakespeare(tmp_path)
    text = EXCERPT.read_bytes()
    assert len(text) == EXCERPT_SIZE == 92_005 and hashlib.sha256(text).hexdigest() == EXCERPT_SHA256
    assert (folder / "input.txt").read_bytes() == text
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["tokens"] == {"train": 82_804, "val": 9_201} and len(meta["vocab"]) == 61
    assert meta["source"] == {"url": data.SOURCES["shakespeare_char"].url, "file": "input.txt", "bytes": EXCERPT_SIZE,
                              "sha256": EXCERPT_SHA256}
    vocab = np.asarray(meta["vocab"], dtype=np.uint8)
    train, val = (np.fromfile(folder / f"{split}.bin", dtype=np.uint8) for split in ("train", "val"))
    assert bytes(vocab[train]) + bytes(vocab[val]) == text
    # what a `scientist` command does before a run: the canonical source finds the prepared folder, fetches nothing
    assert data.prepare("shakespeare_char", tmp_path, timeout_s=0.001) == folder


def test_a_copy_that_is_not_the_excerpt_is_refused(tmp_path):
    altered = bytearray(EXCERPT.read_bytes())
    altered[1000] ^= 0x20  # same size, one letter's case changed
    (tmp_path / "input.txt").write_bytes(bytes(altered))
    with pytest.raises(DataUnavailable, match=f"has sha256 .*, not {EXCERPT_SHA256}"):
        data.install_copy("shakespeare_char", tmp_path / "input.txt", tmp_path / "data", excerpt_source())
    assert not (tmp_path / "data" / "shakespeare_char" / "input.txt").exists()


def test_the_published_size_splits_into_the_published_counts(tmp_path):
    """shakespeare_char's 1,115,394 bytes give 1,003,854 training and 111,540 validation tokens (the README)."""
    text = np.random.default_rng(1).integers(32, 97, data.SOURCES["shakespeare_char"].size, dtype=np.uint8).tobytes()
    (tmp_path / "input.txt").write_bytes(text)
    source = dataclasses.replace(data.SOURCES["shakespeare_char"], sha256=hashlib.sha256(text).hexdigest())
    data.install_copy("shakespeare_char", tmp_path / "input.txt", tmp_path, source)
    folder = data.prepare("shakespeare_char", tmp_path, source)
    assert json.loads((folder / "meta.json").read_text())["tokens"] == {"train": 1_003_854, "val": 111_540}


def test_the_cli_prepares_from_a_copy(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(data.SOURCES, "shakespeare_char", excerpt_source())
    data.main(["--data-dir", str(tmp_path), "--from-file", str(EXCERPT), "shakespeare_char"])
    assert "train 82,804, val 9,201 tokens, vocabulary 61" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="Error: shakespeare_char: .* has 5 bytes"):
        (tmp_path / "short.txt").write_text("short")
        data.main(["--data-dir", str(tmp_path / "other"), "--from-file", str(tmp_path / "short.txt"),
                   "shakespeare_char"])


# -- the core's hook ------------------------------------------------------------------------------------------------

def test_prepare_data_gives_the_folders_of_the_mode(tmp_path, monkeypatch):
    seed_shakespeare(tmp_path)
    template = NanoGPTTemplate()
    assert template.prepare_data(tmp_path, quick=True) == [tmp_path.resolve() / "shakespeare_char"]
    # the full mode also needs enwik8 and text8: offline, the first missing one is named, in one line
    for name in ("enwik8", "text8"):
        source = data.SOURCES[name]
        monkeypatch.setitem(data.SOURCES, name, dataclasses.replace(source, url=closed_port_url(f"/{name}.zip")))
    with pytest.raises(DataUnavailable, match=f"put enwik8.zip .* at {tmp_path.resolve() / 'enwik8' / 'enwik8.zip'}"):
        template.prepare_data(tmp_path, quick=False)


def test_run_limits_show_the_data_to_the_sandbox(tmp_path):
    from scientist_core.pipeline.execution import effective_limits, run_limits
    from scientist_core.settings import Settings

    seed_shakespeare(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data")
    template = NanoGPTTemplate()
    limits = run_limits(template, True, settings)
    assert limits.read_only == [str((tmp_path / "data" / "shakespeare_char").resolve())]
    assert limits.env == {"SCIENTIST_DATA_DIR": str((tmp_path / "data").resolve())}
    assert limits.timeout_s == template.quick_limits.timeout_s
    assert effective_limits(template, True, settings.sandbox).read_only == []  # the template's own are untouched
