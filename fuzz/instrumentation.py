"""Coverage for the codec's generated functions.

The codec compiles its encoders and decoders from source at run time (kbroker/protocol/compiler),
so atheris' import hook never sees them and the fuzzer would be blind inside the code that parses
a request. This wraps Codec's lazy compile so every function it makes is instrumented as it is
stored. Used by the fuzz targets only; it changes no behaviour of the codec.
"""

from __future__ import annotations

import os
from typing import Any


def instrument_generated_codecs() -> None:
    """Only under KBROKER_FUZZ_CODEC_COVERAGE=1, which scripts/fuzz sets unless told not to:
    instrumenting every codec as the seeds first compile it costs most of a minute, which a long
    run earns back and a replay of the corpus (tests) does not."""
    if os.environ.get("KBROKER_FUZZ_CODEC_COVERAGE") != "1":
        return
    import atheris

    from kbroker.protocol.messages import Codec

    compile_on_first_use = Codec.__getattr__
    if getattr(compile_on_first_use, "instrumented", False):
        return

    def compile_instrumented(self: Codec, name: str) -> Any:
        function = compile_on_first_use(self, name)
        if name != "encode":  # encode joins encode_chunks' output; encode_chunks is generated
            function = atheris.instrument_func(function)
            setattr(self, name, function)
        return function

    compile_instrumented.instrumented = True  # type: ignore[attr-defined]
    Codec.__getattr__ = compile_instrumented  # type: ignore[method-assign]
