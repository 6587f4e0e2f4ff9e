"""`scientist template new`: a complete, installable template package from the files in `new/`, which pass their
own tests as generated; `from_v1` (v1.py) ports a template folder of the original AI Scientist into one.

The package, for NAME:

    scientist-NAME/pyproject.toml                 the entry point in the `scientist` group
    scientist-NAME/README.md
    scientist-NAME/src/scientist_NAME/plugin.py   the Template subclass and its registration
    scientist-NAME/src/scientist_NAME/template/   experiment.py (Knobs, the command in its docstring), plot.py,
                                                  prompt.json, seed_ideas.json, latex/references.bib: copied
                                                  into every run's workspace
    scientist-NAME/tests/test_NAME_template.py    the contract and a scripted run, from scientist_core.testing
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scientist_core.errors import PathError, ScientistError

SCAFFOLD = Path(__file__).parent / "new"
NAME_PATTERN = r"[a-z][a-z0-9_]*"


@dataclass(frozen=True)
class PackageNames:
    """How one template name is spelt in each place of its package."""

    name: str
    description: str = "A research template for scientist."

    @property
    def package(self) -> str:
        return f"scientist_{self.name}"

    @property
    def dist(self) -> str:
        return f"scientist-{self.name.replace('_', '-')}"

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_")) + "Template"

    def fill(self, text: str) -> str:
        for key, value in (("name", self.name), ("package", self.package), ("dist", self.dist),
                           ("class", self.class_name), ("description", self.description)):
            text = text.replace("{{" + key + "}}", value)
        return text


def check_name(name: str) -> PackageNames:
    if not re.fullmatch(NAME_PATTERN, name):
        raise ScientistError(f"{name!r} is not a template name", "use lowercase letters, digits and underscores, "
                             "starting with a letter (e.g. seir_model)")
    return PackageNames(name)


def package_layout(names: PackageNames, root: Path) -> dict[str, Path]:
    """Where each part of the package goes under `root`."""
    source = root / "src" / names.package
    return {"root": root, "source": source, "files": source / "template", "tests": root / "tests"}


def write_package(names: PackageNames, root: Path, with_example_files: bool = True) -> dict[str, Path]:
    """The package's frame (pyproject, README, plugin, __init__) in a new folder `root`, and with
    `with_example_files` the starter experiment, plot, prompts, seed ideas and tests. Returns its layout."""
    if root.exists() and any(root.iterdir()):
        raise PathError(f"{root} exists and is not empty", "choose another folder with --out, or remove it")
    layout = package_layout(names, root)
    (layout["files"] / "latex").mkdir(parents=True)
    layout["tests"].mkdir()
    writes = {"pyproject.toml.tmpl": root / "pyproject.toml", "README.md.tmpl": root / "README.md",
              "plugin.py.tmpl": layout["source"] / "plugin.py", "__init__.py.tmpl": layout["source"] / "__init__.py",
              "references.bib.tmpl": layout["files"] / "latex" / "references.bib"}
    if with_example_files:
        writes |= {f"{name}.tmpl": layout["files"] / name
                   for name in ("experiment.py", "plot.py", "prompt.json", "seed_ideas.json")}
        writes["test_template.py.tmpl"] = layout["tests"] / f"test_{names.name}_template.py"
    for template, target in writes.items():
        target.write_text(names.fill((SCAFFOLD / template).read_text()))
    return layout
