"""The template contract (docs/writing-a-template.md) as code: what a template must hold, each problem one line
with its fix. `template_contract_problems` is what can be checked without running anything (TemplateContract's
test asks it); `check_template` adds the knobs, a quick baseline in the sandbox and the paper skeleton compiled:
`scientist template check`."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from pydantic import ValidationError

from scientist_core.errors import PluginError, ScientistError
from scientist_core.template import Template


def script_imports(script: Path) -> set[str]:
    """The top-level modules a script imports, at any depth of its code (relative imports aside)."""
    found = set()
    for node in ast.walk(ast.parse(script.read_text(), str(script))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def template_contract_problems(template: Template, allowed_imports: set[str], work_dir: Path) -> list[str]:
    """What `template` gets wrong of the template contract, one line each with its fix; [] when nothing: the
    experiment and plot scripts import only `allowed_imports` and the standard library, the docstring of the
    script the command runs gives the exact command, prompt.json has its two texts, there are one or two seed
    ideas with distinct names that each name a knob ideas may change, and a workspace prepared in `work_dir`
    holds the scripts, the prompts and the LaTeX skeleton, without caches."""
    problems = []
    allowed = set(allowed_imports) | set(sys.stdlib_module_names)
    command = template.experiment_command("run_0")
    entry = command[1] if len(command) > 1 and command[1].endswith(".py") else template.experiment_file
    for script in dict.fromkeys((template.experiment_file, entry, template.plot_file)):
        outside = script_imports(template.files_dir() / script) - allowed
        if outside:
            problems.append(f"{script} imports {', '.join(sorted(outside))}, not among the allowed: install it and "
                            "list it in the package's dependencies (and the tests' allowed_imports)")
    doc = ast.get_docstring(ast.parse((template.files_dir() / entry).read_text())) or ""
    if " ".join(command) not in doc:
        problems.append(f"the docstring of {entry} does not give the exact command {' '.join(command)!r}: "
                        "add it, as the core runs it")
    prompt = template.prompt()
    problems += [f"prompt.json has no {key}: add the text" for key in ("system", "task_description")
                 if not str(prompt.get(key, "")).strip()]
    ideas = template.seed_ideas()
    if not 1 <= len(ideas) <= 2 or len({idea.name for idea in ideas}) != len(ideas):
        problems.append(f"seed_ideas.json holds {len(ideas)} idea(s) with {len({i.name for i in ideas})} distinct "
                        "names: keep one or two, each its own name")
    from scientist_core.pipeline.plans import idea_model

    runnable = idea_model(template, code_changes=False, max_knobs=3)  # what the offline profile accepts
    for idea in ideas:
        try:
            runnable.model_validate(idea.model_dump(by_alias=True))
        except ValidationError as exc:
            problems.append(f"the seed idea {idea.name} is not testable by knob changes alone: "
                            f"{exc.errors()[0]['msg']}: list in its \"Knobs\" the knobs it changes")
    workspace = template.prepare_workspace(work_dir / "contract-workspace")
    problems += [f"a prepared workspace lacks {name}: ship it in the template's folder" for name in
                 dict.fromkeys((template.experiment_file, entry, template.plot_file, "prompt.json",
                                "seed_ideas.json", "latex/template.tex")) if not (workspace / name).is_file()]
    if list(workspace.rglob("__pycache__")):
        problems.append("a prepared workspace holds __pycache__ folders: remove them from the template's folder")
    return problems + _skeleton_problems(workspace / "latex")


def _writer_and_compiler():
    """The configured writer and compiler; None for one not installed."""
    from scientist_core.plugins import get_host
    from scientist_core.settings import load_settings

    settings, host = load_settings(), get_host()
    found = []
    for kind, name, sections in (("writer", settings.writer, settings.writers),
                                 ("compiler", settings.compiler, settings.compilers)):
        try:
            found.append(host.create(kind, name, sections))
        except PluginError:
            found.append(None)
    return found


def _skeleton_problems(skeleton: Path) -> list[str]:
    """What the configured writer finds wrong with the prepared skeleton without compiling it (scientist-paper's:
    a citation its references.bib does not hold); nothing when no writer is installed."""
    writer, _ = _writer_and_compiler()
    return writer.skeleton_problems(skeleton) if writer is not None else []


def check_template(template: Template, work_dir: Path) -> list[str]:
    """Everything `scientist template check` asks of `template`, one line each with its fix: the knobs load, the
    contract (`template_contract_problems`, the scripts' imports checked against what is installed here), the
    paper skeleton compiles, and a quick baseline runs in the sandbox and writes valid results."""
    import importlib.util

    try:
        template.knobs_model()
    except ScientistError as exc:
        return [exc.one_line()]
    scripts = {template.experiment_file, template.plot_file}
    imported = set().union(*(script_imports(template.files_dir() / s) for s in scripts
                             if (template.files_dir() / s).is_file()))
    installed = {name for name in imported if importlib.util.find_spec(name) is not None}
    try:
        problems = template_contract_problems(template, installed, work_dir)
    except ScientistError as exc:
        return [exc.one_line()]
    writer, compiler = _writer_and_compiler()
    if writer is None or compiler is None:
        problems.append("no LaTeX writer or compiler is installed: install scientist-paper")
    else:
        problems += [f"the paper skeleton: {problem}" for problem in
                     writer.preflight(template.write_latex(work_dir / "skeleton"), compiler, work_dir / "latex")]
    return problems + _baseline_problems(template, work_dir / "baseline")


def _baseline_problems(template: Template, out: Path) -> list[str]:
    from scientist_core.pipeline.baseline import run_baseline
    from scientist_core.plugins import get_host
    from scientist_core.settings import load_settings

    try:
        run_baseline(get_host(), load_settings(out_dir=out), template.name, quick=True)
    except ScientistError as exc:
        return [f"the quick baseline: {exc.one_line()}"]
    return []


def load_template(target: str) -> Template:
    """The template `scientist template check` checks: the one a package folder's entry point registers (added
    to the plugin host when it is not installed), else the installed template named `target`."""
    from scientist_core.plugins import get_host

    host = get_host()
    folder = Path(target)
    if not folder.is_dir():
        return host.create("template", target)
    registered = _registered_from(folder, host)
    if not registered:
        raise PluginError(f"{folder} registers no template",
                          "declare [project.entry-points.scientist] in its pyproject.toml, naming the module whose "
                          "register_templates hook registers the Template (see `scientist template new`)")
    return host.create("template", registered[0])


def _registered_from(folder: Path, host) -> list[str]:
    """The names of the templates the entry points of the package in `folder` register, importing its modules
    from its source folder when the package is not installed."""
    import importlib
    import tomllib

    from scientist_core.plugins import PluginInfo

    try:
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise PluginError(f"{folder} has no readable pyproject.toml with a [project] table ({exc})",
                          "point at a template package's folder (see `scientist template new`)") from None
    entry_points = project.get("entry-points", {}).get("scientist", {})
    source = folder / "src" if (folder / "src").is_dir() else folder
    if str(source.resolve()) not in sys.path:
        sys.path.insert(0, str(source.resolve()))
    names = []
    for entry, target in entry_points.items():
        module_name = target.partition(":")[0]
        ours = [reg.name for reg in host.registrations("template") if reg.cls.__module__ == module_name]
        if not ours:
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # the package's own code: its failure is the check's first problem
                raise PluginError(f"{module_name} (entry point {entry}) cannot be imported: "
                                  f"{type(exc).__name__}: {exc}", "fix the module, or install the package") from None
            host.add(module, PluginInfo(entry, project.get("name", folder.name), str(project.get("version", "0"))))
            ours = [reg.name for reg in host.registrations("template") if reg.cls.__module__ == module_name]
        names += ours
    return names
