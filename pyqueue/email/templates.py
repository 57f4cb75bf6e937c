"""Jinja2 templates for mail (optional: ``pip install 'pyqueue-redis[templates]'``).

A template named ``otp`` has up to three parts: ``subject``, ``html`` and
``text``. Give them as files in a directory (``otp.subject.txt``,
``otp.html``, ``otp.txt``) or as a mapping
``{"otp": {"subject": "...", "html": "...", "text": "..."}}``. HTML is
autoescaped; every template uses strict undefined, so a missing variable is
an error (the job fails without retry) rather than an empty hole in a mail.
When only HTML is given, the worker generates the text part.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SUFFIXES = {"subject": ".subject.txt", "html": ".html", "text": ".txt"}


class TemplateError(ValueError):
    """A template is missing, broken or refers to an undefined variable."""


def _jinja() -> Any:
    try:
        import jinja2
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError("mail templates need Jinja2: "
                          "pip install 'pyqueue-redis[templates]'") from None
    return jinja2


class Templates:
    """Renders named mail templates into subject, html and text."""

    def __init__(self, source: str | Path | Mapping[str, Mapping[str, str]]) -> None:
        jinja2 = _jinja()
        self._parts: dict[str, dict[str, str]] = {}
        self.directory: Path | None = None
        if isinstance(source, str | Path):
            self.directory = Path(source)
            if not self.directory.is_dir():
                raise TemplateError(f"template directory {str(source)!r} does not exist")
            loader = jinja2.FileSystemLoader(str(self.directory))
        else:
            mapping: dict[str, str] = {}
            for name, parts in source.items():
                unknown = set(parts) - set(_SUFFIXES)
                if unknown:
                    raise TemplateError(f"template {name!r} has unknown parts {sorted(unknown)}")
                for part, text in parts.items():
                    mapping[name + _SUFFIXES[part]] = text
            loader = jinja2.DictLoader(mapping)
        self.env = jinja2.Environment(
            loader=loader, undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm"),
                                                default_for_string=False, default=False),
            keep_trailing_newline=True)

    def render(self, name: str, variables: Mapping[str, Any]) -> dict[str, str]:
        """``{"subject"?, "html"?, "text"?}`` for template ``name``."""
        jinja2 = _jinja()
        out: dict[str, str] = {}
        for part, suffix in _SUFFIXES.items():
            try:
                template = self.env.get_template(name + suffix)
            except jinja2.TemplateNotFound:
                continue
            except jinja2.TemplateError as exc:
                raise TemplateError(f"template {name!r} ({part}): {exc}") from None
            try:
                text = template.render(**variables)
            except jinja2.TemplateError as exc:
                raise TemplateError(f"template {name!r} ({part}): {exc}") from None
            out[part] = " ".join(text.split()) if part == "subject" else text
        if not out:
            raise TemplateError(f"no template named {name!r}")
        return out
