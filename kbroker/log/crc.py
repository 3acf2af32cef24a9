"""CRC-32C (Castagnoli) of record batches and producer snapshots, from the `crc32c` package's
C extension.

The package's __init__ also imports importlib.metadata and its command line tool, a fifth of
the broker's start-up time for one C function; so the extension module is loaded directly, and
the package is imported normally only if that fails (a different layout in some future release).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable


def _load_extension() -> Callable[..., int]:
    spec = importlib.util.find_spec("crc32c")  # a top-level find_spec does not run __init__
    if spec is not None and spec.submodule_search_locations:
        folder = spec.submodule_search_locations[0]
        for name in sorted(os.listdir(folder)):
            if not (name.startswith("_crc32c") and name.endswith(".so")):
                continue
            path = os.path.join(folder, name)
            ext_spec = importlib.util.spec_from_file_location("crc32c._crc32c", path)
            if ext_spec is None or ext_spec.loader is None:
                continue
            module = importlib.util.module_from_spec(ext_spec)
            ext_spec.loader.exec_module(module)
            return module.crc32c
    import crc32c as package

    return package.crc32c


crc32c: Callable[..., int] = _load_extension()
