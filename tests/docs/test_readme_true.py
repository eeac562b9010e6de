"""What the README and docs name exists, checked where a machine can check it (issue 35).

Every ``MEETINGS_CDC_*`` name, metric, alert, make target, CLI flag, relative link and README
section named in README.md, docs/, deploy/monitoring/RUNBOOK.md and simulator/README.md
exists; and the reverse for settings (a row in README's "Configuration" table), metrics (a row
in its "Metrics" table), alerts and every subcommand's flags. The truth comes from the
product, not from file paths: the settings classes of ``connector.config``, the metric
families a ``Metrics`` registers on a fresh registry, ``python -m connector <cmd> --help``,
the alert rules, the Makefile's targets.

CHANGELOG.md is history (it names what was renamed or removed) and is not checked.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted(
    [
        README,
        REPO / "deploy" / "monitoring" / "RUNBOOK.md",
        REPO / "simulator" / "README.md",
        *(REPO / "docs").glob("*.md"),
    ]
)
ALERTS = REPO / "deploy" / "monitoring" / "prometheus" / "alerts.yml"
ENV_PREFIX = "MEETINGS_CDC_"
#: Names the docs show as mistakes on purpose (what a typo does), each still in the docs.
WRONG_ON_PURPOSE = {"MEETINGS_CDC_POLL_INTERVAL"}  # README "Configuration": an unknown variable


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def section(markdown: str, heading: str) -> str:
    """The body of the section whose heading line is ``heading`` (to the next heading of its
    level or above)."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = markdown.splitlines()
    start = lines.index(heading) + 1
    end = next(
        (
            i
            for i in range(start, len(lines))
            if re.match(rf"^#{{1,{level}}} ", lines[i]) and not in_fence(lines, i)
        ),
        len(lines),
    )
    return "\n".join(lines[start:end])


def in_fence(lines: list[str], index: int) -> bool:
    """Whether line ``index`` is inside a fenced code block."""
    return sum(1 for line in lines[:index] if line.lstrip().startswith("```")) % 2 == 1


def headings(markdown: str) -> list[str]:
    lines = markdown.splitlines()
    return [
        re.sub(r"^#+ ", "", line).strip()
        for i, line in enumerate(lines)
        if re.match(r"^#{1,6} ", line) and not in_fence(lines, i)
    ]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


# --- the product's names ------------------------------------------------------------------


def _config_modules() -> list[Any]:
    package = importlib.import_module("connector.config")
    modules = [package]
    for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
        modules.append(importlib.import_module(f"connector.config.{info.name}"))
    return modules


@functools.cache
def settings() -> frozenset[str]:
    """Every environment variable of the connector's settings classes."""
    from pydantic_settings import BaseSettings

    classes: set[type[BaseSettings]] = set()
    pending = [
        value
        for module in _config_modules()
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseSettings)
        and value.__module__.startswith("connector.")
    ]  # fmt: skip
    while pending:
        cls = pending.pop()
        if cls not in classes:
            classes.add(cls)
            pending.extend(cls.__subclasses__())
    names = set()
    for cls in classes:
        prefix = str(cls.model_config.get("env_prefix") or "").upper()
        names |= {f"{prefix}{field.upper()}" for field in cls.model_fields}
    assert len(names) > 20, f"settings classes not found in connector.config: {classes}"
    return frozenset(names)


@functools.cache
def other_variables() -> tuple[frozenset[str], tuple[str, ...]]:
    """``MEETINGS_CDC_*`` variables that are read but are no setting (the config file, the
    schema catalog, the tooling), and the prefixes reserved for the test suite and tooling."""
    names: set[str] = set()
    prefixes: tuple[str, ...] = ()
    for module in _config_modules():
        names |= set(getattr(module, "OTHER_VARIABLES", ()))
        prefixes = prefixes or tuple(getattr(module, "TOOLING_PREFIXES", ()))
    assert names, "connector.config names no OTHER_VARIABLES"
    assert prefixes, "connector.config names no TOOLING_PREFIXES"
    return frozenset(names), prefixes


@functools.cache
def tooling_sources() -> str:
    """The code that reads the reserved tooling variables (tests, bench, deploy scripts)."""
    paths = [p for folder in ("tests", "bench", "deploy") for p in (REPO / folder).rglob("*")]
    paths += [REPO / "Makefile", *(REPO / ".ci").glob("*")]
    wanted = {".py", ".sh", ""}
    return "\n".join(
        text(p)
        for p in paths
        if p.is_file() and p.suffix in wanted and "__pycache__" not in p.parts
    )


def _metrics_class() -> Any:
    for name in ("connector.ops.metrics", "connector.metrics"):
        try:
            return importlib.import_module(name).Metrics
        except ModuleNotFoundError:
            continue
    raise AssertionError("no Metrics class in connector.ops.metrics or connector.metrics")


@functools.cache
def metric_families() -> dict[str, str]:
    """Our metric families (name as exposed, without a counter's _total) -> type."""
    from prometheus_client import CollectorRegistry

    metrics = _metrics_class()(CollectorRegistry())
    families = {
        family.name: family.type
        for family in metrics.registry.collect()
        if family.name.startswith("meetings_cdc_")
    }
    assert families, "Metrics registered no meetings_cdc_* family"
    return families


@functools.cache
def series_names() -> frozenset[str]:
    """Every series name our families can expose."""
    names: set[str] = set()
    for name, kind in metric_families().items():
        if kind == "counter":
            names |= {f"{name}_total", f"{name}_created"}
        elif kind == "histogram":
            names |= {name} | {f"{name}_{s}" for s in ("bucket", "sum", "count", "created")}
        elif kind == "info":
            names.add(f"{name}_info")
        else:
            names.add(name)
    return frozenset(names)


def documented_metric(name: str) -> str:
    """The metric as a README row names it: counters with _total, info with _info."""
    kind = metric_families()[name]
    return {"counter": f"{name}_total", "info": f"{name}_info"}.get(kind, name)


@functools.cache
def alert_names() -> frozenset[str]:
    doc = yaml.safe_load(text(ALERTS))
    return frozenset(r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r)


@functools.cache
def make_targets() -> frozenset[str]:
    return frozenset(re.findall(r"^([a-z][a-z0-9-]*):", text(REPO / "Makefile"), re.MULTILINE))


@functools.cache
def help_text(*command: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "connector", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@functools.cache
def subcommands(*path: str) -> tuple[str, ...]:
    """The subcommands ``meetings-cdc <path> --help`` lists (none for a leaf command)."""
    usage = help_text(*path)
    block = re.search(r"positional arguments:\n  ([A-Z]+)\n((?: {4,}.*\n)+)", usage)
    if block is None:
        return ()
    return tuple(re.findall(r"^ {4}([a-z][a-z-]*)(?:\s|$)", block.group(2), re.MULTILINE))


@functools.cache
def commands() -> tuple[tuple[str, ...], ...]:
    """Every leaf command, as its words: ``("tail",)``, ``("state", "show")``."""
    found = []
    for command in subcommands():
        nested = subcommands(command)
        found += [(command, sub) for sub in nested] if nested else [(command,)]
    assert found, help_text()
    return tuple(found)


@functools.cache
def flags(command: tuple[str, ...] | str) -> frozenset[str]:
    """The long options of ``meetings-cdc <command>``, --help aside."""
    words = (command,) if isinstance(command, str) else command
    return frozenset(re.findall(r"(--[a-z][a-z0-9-]*)", help_text(*words))) - {"--help"}


# --- what the docs name -----------------------------------------------------------------


def mentions(pattern: str) -> list[tuple[str, str]]:
    """(doc, match) of every match of ``pattern`` in every checked doc."""
    return [(rel(path), m) for path in DOCS for m in re.findall(pattern, text(path))]


def code_spans_and_blocks(markdown: str) -> list[str]:
    """The text of every inline code span and every line of every fenced code block."""
    lines = markdown.splitlines()
    found = [line for i, line in enumerate(lines) if in_fence(lines, i) and "```" not in line]
    prose = "\n".join(line for i, line in enumerate(lines) if not in_fence(lines, i))
    found += re.findall(r"`((?:[^`\n]|\n(?!\n))+)`", prose)  # a span may wrap a line
    return found


# --- settings -------------------------------------------------------------------------------


def test_every_setting_the_docs_name_exists() -> None:
    """A full name is a setting or another variable the project reads; a prefix
    (``MEETINGS_CDC_API_*``, ``MEETINGS_CDC_TEST_``) starts a known name or is reserved."""
    others, reserved = other_variables()
    known = settings() | others | WRONG_ON_PURPOSE
    assert all(any(n in text(p) for p in DOCS) for n in WRONG_ON_PURPOSE), "stale exception"
    unknown = []
    for doc, (name, wildcard) in mentions(r"\b(MEETINGS_CDC_[A-Z0-9_]*)(\*?)"):
        if name == ENV_PREFIX:
            continue
        if wildcard or name.endswith("_"):
            prefix = name.rstrip("_") + "_"
            if not any(k.startswith(prefix) for k in known) and prefix not in reserved:
                unknown.append(f"{doc}: {name}{wildcard}")
        elif name.startswith(reserved):
            if name not in tooling_sources():
                unknown.append(f"{doc}: {name} (a tooling variable nothing reads)")
        elif name not in known:
            unknown.append(f"{doc}: {name}")
    assert unknown == [], "names no setting or variable: " + ", ".join(sorted(set(unknown)))


def test_every_setting_has_a_row_in_the_readme_configuration_table() -> None:
    table = section(text(README), "## Configuration")
    rows = set(re.findall(r"^\| `(MEETINGS_CDC_[A-Z0-9_]+)` \|", table, re.MULTILINE))
    others, _ = other_variables()  # MEETINGS_CDC_CONFIG_FILE has a row too
    missing, extra = sorted(settings() - rows), sorted(rows - settings() - others)
    assert missing == [], "settings missing from README 'Configuration': " + ", ".join(missing)
    assert extra == [], "README 'Configuration' rows that are no setting: " + ", ".join(extra)


# --- metrics --------------------------------------------------------------------------------


def test_every_metric_the_docs_name_exists() -> None:
    unknown = [
        f"{doc}: {name}"
        for doc, name in mentions(r"\b(meetings_cdc_[a-z0-9_]*[a-z0-9])\b(?![*.])")
        if name not in series_names()
    ]
    assert unknown == [], "names no metric: " + ", ".join(sorted(set(unknown)))


def test_every_metric_has_a_row_in_the_readme_metrics_table() -> None:
    table = section(text(README), "## Metrics")
    rows = set(re.findall(r"^\| `(meetings_cdc_[a-z0-9_]+)` \|", table, re.MULTILINE))
    expected = {documented_metric(name) for name in metric_families()}
    missing, extra = sorted(expected - rows), sorted(rows - expected)
    assert missing == [], "metrics missing from README 'Metrics': " + ", ".join(missing)
    assert extra == [], "README 'Metrics' rows that are no metric: " + ", ".join(extra)


# --- alerts ---------------------------------------------------------------------------------


def test_every_alert_the_docs_name_exists_and_the_readme_names_every_alert() -> None:
    unknown = [
        f"{doc}: {name}"
        for doc, name in mentions(r"\b(MeetingsCdc[A-Z][A-Za-z]+)\b")
        if name not in alert_names()
    ]
    assert unknown == [], "names no alert: " + ", ".join(sorted(set(unknown)))
    readme = set(re.findall(r"`(MeetingsCdc[A-Za-z]+)`", text(README)))
    missing = sorted(alert_names() - readme)
    assert missing == [], "alerts the README does not name: " + ", ".join(missing)


# --- make targets ---------------------------------------------------------------------------


def test_every_make_target_the_docs_name_exists() -> None:
    unknown = []
    for path in DOCS:
        for code in code_spans_and_blocks(text(path)):
            for target in re.findall(r"(?:^|[\s;&|(])make ([a-z][a-z0-9-]*)", code):
                if target not in make_targets():
                    unknown.append(f"{rel(path)}: make {target}")
    assert unknown == [], "no such make target: " + ", ".join(sorted(set(unknown)))


# --- CLI flags -------------------------------------------------------------------------------

#: README sections documenting one subcommand (its flag table or flag list).
COMMAND_SECTIONS = {
    "## Change events": "tail",
    "## Exporting meetings": "export",
    "## Simulator": "simulate",
}


def invocations(code: str) -> list[tuple[tuple[str, ...], list[str]]]:
    """(command words, flags) of each ``meetings-cdc <cmd> [<sub>] ...`` in a line of code."""
    found = []
    pattern = r"(?:meetings-cdc|python -m connector) ([a-z][a-z-]*)((?:[^|;&>`]|\\\n)*)"
    for command, rest in re.findall(pattern, code):
        words: tuple[str, ...] = (command,)
        if command in subcommands():
            nested = re.match(r"\s+([a-z][a-z-]*)", rest)
            if nested and nested.group(1) in subcommands(command):
                words = (command, nested.group(1))
        found.append((words, re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest)))
    return found


def test_every_flag_of_a_meetings_cdc_command_in_the_docs_exists() -> None:
    unknown = []
    for path in DOCS:
        for code in code_spans_and_blocks(text(path)):
            for words, used in invocations(code):
                name = " ".join(words)
                if words[0] not in subcommands():
                    if not used:
                        continue  # prose such as "meetings-cdc simulator", not a command
                    unknown.append(f"{rel(path)}: meetings-cdc {name} (no such command)")
                    continue
                if words not in commands():
                    continue  # a command with subcommands, named as a whole
                unknown += [
                    f"{rel(path)}: meetings-cdc {name} {flag}"
                    for flag in used
                    if flag not in flags(words) | {"--help", "--version"}
                ]
    assert unknown == [], "no such flag: " + ", ".join(sorted(set(unknown)))


@pytest.mark.parametrize(("heading", "command"), sorted(COMMAND_SECTIONS.items()))
def test_a_commands_readme_section_names_its_flags_and_no_other(heading, command) -> None:
    body = section(text(README), heading)
    named = set(re.findall(r"`(--[a-z][a-z0-9-]*)", body))
    # flags of other tools (the section's shell examples) are checked by invocation above
    tables = set(re.findall(r"^\| `(--[a-z][a-z0-9-]*)", body, re.MULTILINE))
    missing, extra = sorted(flags(command) - named), sorted(tables - flags(command))
    assert missing == [], f"README {heading!r} lacks {command} flags: " + ", ".join(missing)
    assert extra == [], f"README {heading!r}: no such {command} flag: " + ", ".join(extra)
    if command == "simulate":  # a flag list in prose: "Flags (...): `--host` (...), ..."
        prose = re.search(r"Flags \(`--help`[^\n]*(?:\n(?!\n).*)*", body)
        assert prose, "the Simulator section's flag list moved"
        listed = set(re.findall(r"`(--[a-z][a-z0-9-]*)`", prose.group(0))) - {"--help"}
        assert sorted(listed - flags(command)) == [], "no such simulate flag"


def test_every_commands_flags_are_in_the_readme() -> None:
    """Each subcommand's flags appear (in code) in a README section naming the subcommand."""
    readme = text(README)
    parts = re.split(r"(?m)^## ", readme)
    missing = []
    for words in commands():
        name = " ".join(words)
        named = [p for p in parts if f"meetings-cdc {name}" in p]
        if not named:
            missing.append(f"`meetings-cdc {name}` itself")
            continue
        code = [c for p in named for c in code_spans_and_blocks(p)]
        documented = {flag for c in code for flag in re.findall(r"(--[a-z][a-z0-9-]*)", c)}
        missing += [f"{name} {flag}" for flag in sorted(flags(words) - documented)]
    assert missing == [], "flags the README does not document: " + ", ".join(missing)


# --- links and section references ------------------------------------------------------


def test_every_relative_link_resolves() -> None:
    """A link to a file names one that exists; an anchor names a heading of its page."""
    broken = []
    for path in DOCS:
        body = text(path)
        lines = body.splitlines()
        prose = "\n".join(line for i, line in enumerate(lines) if not in_fence(lines, i))
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:
            page, _, fragment = target.partition("#")
            linked = (path.parent / page).resolve() if page else path
            if not linked.exists():
                broken.append(f"{rel(path)}: {target} (no such file)")
                continue
            is_page = linked.suffix == ".md"
            if fragment and is_page and fragment not in {anchor(h) for h in headings(text(linked))}:
                broken.append(f"{rel(path)}: {target} (no such section)")
    assert broken == [], "broken links: " + ", ".join(broken)


def test_every_readme_section_the_docs_and_the_help_name_exists() -> None:
    """'see README, "Exporting meetings"' and the like, in the docs and in every --help."""
    sections = {h.lower() for h in headings(text(README))}
    sources = [(rel(p), text(p)) for p in DOCS]
    sources += [("meetings-cdc --help", help_text())]
    sources += [(f"meetings-cdc {' '.join(c)} --help", help_text(*c)) for c in commands()]
    missing = []
    for where, body in sources:
        body = re.sub(r"\s+", " ", body)
        for name in re.findall(r"README,? [\"'“]([^\"'”]+)[\"'”]", body):
            if name.lower() not in sections:
                missing.append(f"{where}: README {name!r}")
    assert missing == [], "no such README section: " + ", ".join(missing)
