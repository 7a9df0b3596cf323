"""One Jinja2 environment for the remote scripts: strict, newline-preserving, and quoting for the shell."""

from __future__ import annotations

import shlex
from enum import StrEnum
from pathlib import Path
from xml.sax.saxutils import escape

import jinja2

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class Action(StrEnum):
    APPLY = "apply"
    REMOVE = "remove"


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    # Shell scripts and XML, not HTML. Shell values go through `q`, XML text through `xml`.
    autoescape=False,  # noqa: S701
)
_env.filters["q"] = lambda value: shlex.quote(str(value))
_env.filters["xml"] = lambda value: escape(str(value), {'"': "&quot;"})


def render(name: str, **values: object) -> str:
    try:
        return _env.get_template(name).render(**values)
    except jinja2.TemplateError as err:
        lineno = getattr(err, "lineno", None)
        where = f"{name}:{lineno}" if lineno else name
        raise RuntimeError(f"template {where}: {err}") from err
