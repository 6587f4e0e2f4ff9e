"""Helpers for tests that drive the real `scientist` console script and real installed-plugin metadata."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCIENTIST = Path(sys.executable).with_name("scientist")


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed `scientist` script; `env` adds to (or, with None values, removes from) os.environ."""
    assert SCIENTIST.exists(), f"{SCIENTIST} is missing: install scientist-core into this environment (make test)"
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    return subprocess.run([str(SCIENTIST), *args], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout)


def make_distribution(site: Path, dist: str, version: str, entry_points: dict[str, str],
                      modules: dict[str, str]) -> Path:
    """Lay out an installed distribution (modules plus .dist-info with entry points) in `site`.

    Put `site` on PYTHONPATH and importlib.metadata finds it exactly as it finds a pip-installed package.
    """
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[scientist]\n{lines}\n")
    return site


def template_module(template_name: str, description: str = "a test template") -> str:
    """Source of a plugin module registering a minimal template named `template_name`."""
    return f'''
        from pathlib import Path
        from pydantic import BaseModel
        from scientist_core import Template, hookimpl

        class Knobs(BaseModel):
            steps: int = 1

        class T(Template):
            name = {template_name!r}
            description = {description!r}

            def files_dir(self):
                return Path(__file__).parent

            def knobs_model(self):
                return Knobs

        @hookimpl
        def register_templates(register):
            register(T)
    '''


def modules_loaded_by(code: str, packages: set[str]) -> list[str]:
    """The modules of `packages` (top-level names) that a fresh interpreter holds after running `code`: what an
    import or a start-up really pulls in, which the test process, with everything already loaded, cannot tell."""
    probe = (f"{code}\nimport sys\n"
             f"print(' '.join(sorted(m for m in sys.modules if m.partition('.')[0] in {sorted(packages)!r})))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()
