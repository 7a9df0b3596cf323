"""One Jinja2 environment for the remote scripts: strict, newline-preserving, and quoting for the shell."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from enum import StrEnum
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

# The host-side templates: package data of smtps_iredmail.templates (the repository's templates/ folder).
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class Action(StrEnum):
    APPLY = "apply"
    REMOVE = "remove"


def renderer(folder: Path) -> Callable[..., str]:
    """A render(name, **values) for the templates in folder: strict about missing values, keeps trailing newlines,
    and names the template and line of any error. Shell values go through `q`, XML text through `xml`."""
    import jinja2  # imported on first render: a provider process that only checks and diffs never renders

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        # Shell scripts, config files and XML, not HTML: HTML escaping would corrupt them.
        autoescape=False,  # noqa: S701
    )
    env.filters["q"] = lambda value: shlex.quote(str(value))
    env.filters["xml"] = lambda value: escape(str(value), {'"': "&quot;"})

    def render(name: str, **values: object) -> str:
        try:
            return env.get_template(name).render(**values)
        except jinja2.TemplateError as err:
            lineno = getattr(err, "lineno", None)
            where = f"{name}:{lineno}" if lineno else name
            raise RuntimeError(f"template {where}: {err}") from err

    return render


@cache
def _scripts() -> Callable[..., str]:
    return renderer(TEMPLATES)


def render(name: str, **values: object) -> str:
    """Render one of the host-side templates (templates/)."""
    return _scripts()(name, **values)


@cache
def host_python(name: str) -> str:
    """A host-side Python file of smtps/ (the lockout guard, the zone probe), shipped inside the scripts as it is
    (never rendered), in a quoted here-document ended by SMTPS_<NAME>."""
    text = (Path(__file__).resolve().parent / f"{name}.py").read_text()
    # No line of it may end that document early.
    assert f"SMTPS_{name.upper()}" not in text  # noqa: S101 - a property of this repository's own files
    return text.rstrip("\n")


def lockout_guard() -> str:
    return host_python("lockout_guard")


def zone_probe() -> str:
    return host_python("zone_probe")


def nft_rule() -> str:
    return host_python("nft_rule")


def master_cf() -> str:
    return host_python("master_cf")
