"""Documents generated from the code are committed as generated: `make docs` rewrites them, and
this fails when a change to the code did not."""

from __future__ import annotations

import pytest
from labstack import ROOT
from labtools import docs


@pytest.mark.parametrize("path", sorted(docs.GENERATED))
def test_generated_document_is_up_to_date(path: str) -> None:
    assert (ROOT / path).read_text() == docs.render()[path], f"run `make docs` ({path})"
