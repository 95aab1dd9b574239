"""The API pages (docs/api/*.md) are built from docstrings: every module they name, and every public class and
function defined in it, must have one, or the page would show a bare signature."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted({m for page in (ROOT / "docs/api").glob("*.md")
                  for m in re.findall(r"^::: (\S+)$", page.read_text(), re.M)})


def test_the_api_pages_name_the_public_packages():
    assert {"ndgan.ops", "ndgan.nets", "ndgan.io.checkpoint", "ndgan.sampling", "ndgan.train.loop"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_of_an_api_module_has_a_docstring(name):
    module = importlib.import_module(name)
    assert (module.__doc__ or "").strip(), f"{name}: no module docstring"
    missing = [attr for attr, obj in vars(module).items()
               if not attr.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
               and obj.__module__ == name and not (obj.__doc__ or "").strip()]
    assert not missing, f"{name}: no docstring for {missing}"
