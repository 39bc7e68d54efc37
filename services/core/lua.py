"""The one way Lua scripts are read: ``<package>/lua/<name>.lua``, kept beside their code.

A package's ``lua/_common.lua`` (shared helpers), when present, is prepended to each of its
scripts, so every operation stays one file and one atomic script. Callers register the
text with ``client.register_script`` (EVALSHA, reloaded when Redis lost it).
"""

from __future__ import annotations

import functools
from importlib import resources

COMMON = "_common.lua"


@functools.cache
def lua_source(package: str, name: str) -> str:
    """The text of ``<package>/lua/<name>.lua``, after the package's ``_common.lua`` if any."""
    folder = resources.files(package) / "lua"
    body = (folder / f"{name}.lua").read_text(encoding="utf-8")
    common = folder / COMMON
    return f"{common.read_text(encoding='utf-8')}\n{body}" if common.is_file() else body
