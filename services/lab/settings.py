"""Settings from the environment, in one place.

A settings class is a frozen dataclass whose defaults are the documented defaults;
each field ``name`` is read from the variable ``LAB_<NAME>``. A bad value is a
clear one-line error, never a traceback.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import os
import textwrap
import tokenize
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def env_name(field_name: str) -> str:
    return "LAB_" + field_name.upper()


def _convert(raw: str, default: Any, var: str) -> Any:
    try:
        if isinstance(default, bool):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            value: Any = int(raw)
        elif isinstance(default, float):
            value = float(raw)
        else:
            return raw
    except ValueError:
        raise SettingsError(f"{var}={raw!r} is not a valid {type(default).__name__}") from None
    if value < 0:
        raise SettingsError(f"{var}={raw!r} must not be negative")
    return value


def load(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Build ``cls`` from its defaults, overridden by ``LAB_*`` variables in ``environ``."""
    defaults = {field.name: field.default for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**load_values(defaults, environ))


def load_values(
    defaults: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``defaults`` (setting name -> default value), each overridden by its ``LAB_*`` variable
    in ``environ`` where that is set and not empty."""
    environ = os.environ if environ is None else environ
    values = dict(defaults)
    for name, default in defaults.items():
        var = env_name(name)
        if environ.get(var, "") != "":
            values[name] = _convert(environ[var], default, var)
    return values


def describe(settings: Any) -> str:
    """One line listing every setting, for the start-up log."""
    return " ".join(f"{f.name}={getattr(settings, f.name)}" for f in dataclasses.fields(settings))


def documented(cls: type) -> list[tuple[str, Any, str]]:
    """Each setting of ``cls`` as (variable, default, meaning), the meaning read from the
    comment beside its field in the source (and the comment lines that continue it): the one
    place a setting is described, for ``--help`` and docs/configuration.md."""
    source = textwrap.dedent(inspect.getsource(cls))
    fields = {field.name: field for field in dataclasses.fields(cls)}
    meaning: dict[str, list[str]] = {}
    current: str | None = None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME and token.start[1] == 4 and token.string in fields:
            current = token.string  # a field's line
            meaning[current] = []
        elif token.type == tokenize.COMMENT and current is not None:
            text = token.string.lstrip("#").strip()
            if token.start[1] == 4 and token.string.startswith("# ("):
                current = None  # a note on the class, not a continuation
            elif text:
                meaning[current].append(text)
        elif token.type == tokenize.NAME and token.start[1] == 4:
            current = None
    return [
        (env_name(name), field.default, " ".join(meaning.get(name, [])))
        for name, field in fields.items()
    ]


def help_text(rows: list[tuple[str, Any, str]], width: int = 100) -> str:
    """``documented`` rows as an indented list for ``--help`` (plain text, no markup)."""
    lines = []
    for var, default, text in rows:
        lines.append(f"  {var}={default}")
        if text:
            lines += textwrap.wrap(text, width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)
