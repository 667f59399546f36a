from __future__ import annotations

from dataclasses import dataclass

import pytest
from lab import settings


@dataclass(frozen=True)
class Example:
    port: int = 1
    timeout_s: float = 2.5
    keepalive: bool = True
    name: str = "x"


def test_defaults_without_environment() -> None:
    assert settings.load(Example, {}) == Example()


def test_each_field_read_from_its_lab_variable() -> None:
    env = {"LAB_PORT": "8080", "LAB_TIMEOUT_S": "0.5", "LAB_KEEPALIVE": "off", "LAB_NAME": "y"}
    assert settings.load(Example, env) == Example(8080, 0.5, False, "y")


def test_empty_value_keeps_the_default() -> None:
    assert settings.load(Example, {"LAB_PORT": ""}).port == 1


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("LAB_PORT", "eighty", "LAB_PORT='eighty' is not a valid int"),
        ("LAB_PORT", "-1", "must not be negative"),
        ("LAB_TIMEOUT_S", "soon", "is not a valid float"),
        ("LAB_KEEPALIVE", "maybe", "is not a valid bool"),
    ],
)
def test_bad_values_are_one_clear_error(var: str, value: str, message: str) -> None:
    with pytest.raises(settings.SettingsError, match=message):
        settings.load(Example, {var: value})


def test_describe_lists_every_setting() -> None:
    assert settings.describe(Example()) == "port=1 timeout_s=2.5 keepalive=True name=x"
