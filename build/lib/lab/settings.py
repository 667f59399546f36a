"""Settings from the environment, in one place.

A settings class is a frozen dataclass whose defaults are the documented defaults;
each field ``name`` is read from the variable ``LAB_<NAME>``. A bad value is a
clear one-line error, never a traceback.
"""

from __future__ import annotations

import dataclasses
import os
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
