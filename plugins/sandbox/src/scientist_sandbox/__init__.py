"""scientist-sandbox: the sandbox every experiment runs in on this machine (the executor "local"), and
`scientist sandbox exec` to run any command in it. `run` is the whole API; see runner.py and docs/sandbox.md."""

from scientist_sandbox.runner import ENV_MARKER, PASSTHROUGH_ENV, SCRATCH_DIR_NAME, python_executable, run

__version__ = "0.1.0"
__all__ = ["ENV_MARKER", "PASSTHROUGH_ENV", "SCRATCH_DIR_NAME", "python_executable", "run"]
