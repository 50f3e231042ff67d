"""mkdocs hook: one API reference page per public module of gradkit, found on disk at build time.

A module added under ``src/gradkit`` gets its page (``api/<module>.md`` holding ``::: gradkit.<module>``)
and its place in the nav without anyone editing ``mkdocs.yml``. A package's page documents the package
and then each of its public submodules. The command line (``gradkit.cli``) is documented by ``--help``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

SRC = Path(__file__).resolve().parents[2] / "src" / "gradkit"
SKIP = {"cli", "__main__"}


def _public(path: Path) -> bool:
    return not path.name.startswith("_") and path.stem not in SKIP


def modules() -> dict[str, list[str]]:
    """``{"core": ["gradkit.core"], "race": ["gradkit.race", "gradkit.race.engine", ...], ...}``."""
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.iterdir()):
        if path.is_file() and path.suffix == ".py" and _public(path):
            found[path.stem] = [f"gradkit.{path.stem}"]
        elif path.is_dir() and (path / "__init__.py").exists() and _public(path):
            subs = sorted(p.stem for p in path.glob("*.py") if _public(p))
            found[path.name] = [f"gradkit.{path.name}"] + [f"gradkit.{path.name}.{s}" for s in subs]
    return found


def page(name: str, targets: list[str]) -> str:
    lines = [f"# `gradkit.{name}`", ""]
    package = len(targets) > 1
    for k, target in enumerate(targets):
        # A package's own docstring first, without the names it re-exports (each is documented once,
        # where it is defined); then one section per submodule.
        options = ["      show_root_heading: true"] if k else ["      show_root_heading: false"]
        if package and not k:
            options.append("      members: false")
        lines += [f"::: {target}", "    options:", *options, ""]
    return "\n".join(lines)


def on_config(config, **kwargs):
    api = [{f"gradkit.{name}": f"api/{name}.md"} for name in modules()]
    for entry in config.nav or []:
        if isinstance(entry, dict) and "API reference" in entry:
            entry["API reference"] = [*(entry["API reference"] or []), *api]
    return config


def on_files(files, config, **kwargs):
    for name, targets in modules().items():
        files.append(File.generated(config, f"api/{name}.md", content=page(name, targets)))
    add_readme_as_home(files, config)
    return files


def add_readme_as_home(files, config):
    """The site's home page is the README, its ``docs/`` links made relative to the site."""
    readme = (SRC.parents[1] / "README.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "index.md", content=readme.replace("](docs/", "](")))
