"""Every handler module opens with the scannable header kbroker/api/handlers/__init__.py describes:
"Name (api key): what it does.", then "- Versions:", "- Behaviour:" and "- Gaps:" bullets, the
versions matching what the module serves and advertises."""

from __future__ import annotations

import importlib
import re

import pytest

from kbroker.api.handlers import ADVERTISED_VERSIONS, HANDLER_MODULES, HANDLERS

_FIRST_LINE = re.compile(r"(?P<name>[A-Za-z]+) \((?P<key>\d+)\): \S.*\.$")
_VERSIONS = re.compile(r"- Versions: (?P<low>\d+)(?:-(?P<high>\d+))? served"
                       r"(?:; (?P<ad_low>\d+)-(?P<ad_high>\d+) advertised)?")


@pytest.mark.parametrize("module_name", HANDLER_MODULES)
def test_handler_header(module_name: str):
    module = importlib.import_module(f"kbroker.api.handlers.{module_name}")
    lines = module.__doc__.splitlines()
    first = _FIRST_LINE.fullmatch(lines[0])
    assert first, f"first line: {lines[0]!r}"
    assert int(first["key"]) == int(module.API_KEY)
    bullets = [line.split(":")[0] for line in lines if line.startswith("- ")]
    assert bullets == ["- Versions", "- Behaviour", "- Gaps"]
    versions = _VERSIONS.match(next(line for line in lines if line.startswith("- Versions")))
    assert versions, "the Versions bullet names the range served"
    served = (int(versions["low"]), int(versions["high"] or versions["low"]))
    assert served == module.VERSIONS
    if versions["ad_low"] is not None:
        assert (int(versions["ad_low"]), int(versions["ad_high"])) == module.ADVERTISED_VERSIONS
    else:
        assert getattr(module, "ADVERTISED_VERSIONS", module.VERSIONS) == module.VERSIONS
    # The registry's table (read without importing the module) says what the module declares.
    assert HANDLERS[module_name] == (module.API_KEY, module.VERSIONS)
    assert ADVERTISED_VERSIONS.get(module_name, module.VERSIONS) == getattr(module, "ADVERTISED_VERSIONS",
                                                                            module.VERSIONS)
