"""Compiles a MessageSchema at one version into Python source for decode and encode, then execs it.

The generated functions are straight-line code: runs of fixed-width fields (plus the
classic length prefix of the variable field that follows them) are read and written with
one precompiled struct.Struct call, arrays and structs become inline loops and dict
literals, and records fields are sliced out of the input as memoryviews (never copied).
There is no per-field dispatch at run time.

Decoding: ``decode(buf, offset=0) -> (dict, end)``. Every key the schema knows (for any
version) is present in the result; fields absent from this version carry their default.
Encoding: ``encode_chunks(msg, out) -> total length``: appends bytes pieces to ``out``,
each records value as its own piece, untouched. Missing keys take the schema default.

Both raise only CodecError on bad input. This module must not touch sockets or the log,
and must not know about particular APIs: everything comes from the schema.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from kbroker.protocol.schema import (
    FIXED_WIDTH_TYPES,
    NO_VERSIONS,
    FieldSpec,
    MessageSchema,
    default_value,
)
from kbroker.protocol.uuids import ZERO_UUID


class CodecError(ValueError):
    """Truncated or malformed input, or a message that cannot be encoded."""


# What the generated code may raise on garbage or on values of the wrong type; all
# become CodecError at the function boundary.
_FAILURES = (struct.error, IndexError, KeyError, ValueError, TypeError, AttributeError, OverflowError)

_ZERO_UUID_BYTES = bytes(16)
_new_object = object.__new__
_set_attribute = object.__setattr__
_SAFE_UNKNOWN = uuid.SafeUUID.unknown


def uuid_from_bytes(raw: bytes | memoryview) -> uuid.UUID:
    """Build a UUID from 16 big-endian bytes without uuid.UUID.__init__'s argument checks."""
    if raw == _ZERO_UUID_BYTES:
        return ZERO_UUID
    value = _new_object(uuid.UUID)
    _set_attribute(value, "int", int.from_bytes(raw, "big"))
    _set_attribute(value, "is_safe", _SAFE_UNKNOWN)
    return value


def read_uvarint_tail(data: bytes | bytearray | memoryview, pos: int, first: int) -> tuple[int, int]:
    """Finish an unsigned varint whose first byte (>= 0x80) was already consumed."""
    value = first & 0x7F
    shift = 7
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise CodecError("unsigned varint longer than 5 bytes")


def uvarint_bytes(value: int) -> bytes:
    """Encode an unsigned varint (up to 32 bits)."""
    if value < 0 or value > 0xFFFFFFFF:
        raise CodecError(f"unsigned varint out of range: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_RUNTIME = {
    "_CodecError": CodecError,
    "_FAILURES": _FAILURES,
    "_uuid": uuid_from_bytes,
    "_uvarint_tail": read_uvarint_tail,
    "_uvarint": uvarint_bytes,
    "_unpack_from": struct.unpack_from,
    "_pack": struct.pack,
    "_ZERO_UUID": ZERO_UUID,
    "_memoryview": memoryview,
    "_str": str,
    "_bytes": bytes,
    "_bytearray": bytearray,
    "_len": len,
    "_list": list,
}

# The classic (non-flexible) length prefix of each variable-width kind.
_CLASSIC_PREFIX = {"string": "h", "bytes": "i", "records": "i", "array": "i"}


class _Source:
    """Accumulates generated lines, unique local names and the constants they refer to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, object] = dict(_RUNTIME)
        self._counter = 0
        self._struct_names: dict[str, str] = {}

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def local(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}{self._counter}"

    def constant(self, value: object, hint: str = "_k") -> str:
        name = f"{hint}{len(self.names)}"
        self.names[name] = value
        return name

    def packer(self, fmt: str) -> str:
        """A module-level struct.Struct for a format, shared by every use in this function."""
        if fmt not in self._struct_names:
            self._struct_names[fmt] = self.constant(struct.Struct(">" + fmt), "_S")
        return self._struct_names[fmt]

    def compile(self, function_name: str, filename: str) -> Any:
        text = "\n".join(self.lines) + "\n"
        namespace = dict(self.names)
        exec(compile(text, filename, "exec"), namespace)  # noqa: S102 - generated from schema files
        function: Any = namespace[function_name]
        function.source = text  # kept for debugging: print(codec.decode.source)
        return function


def _kind(spec: FieldSpec) -> str:
    if spec.is_array:
        return "array"
    if spec.is_struct:
        return "struct"
    return spec.type


def _is_fixed(spec: FieldSpec) -> bool:
    return not spec.is_array and spec.type in FIXED_WIDTH_TYPES


def _literal(src: _Source, value: object) -> str:
    """A source expression for an immutable default value."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    return src.constant(value)


def _fresh_default(src: _Source, spec: FieldSpec) -> str:
    """An expression building a field's default afresh (new lists and dicts each time)."""
    if spec.is_array:
        return "None" if spec.raw_default == "null" else "[]"
    if spec.is_struct:
        if spec.raw_default == "null":
            return "None"
        members = ", ".join(f"{m.key!r}: {_fresh_default(src, m)}" for m in spec.fields)
        return "{" + members + "}"
    return _literal(src, default_value(spec))


class _Layout:
    """Which fields of a struct are on the wire at this version, and how."""

    def __init__(self, fields: tuple[FieldSpec, ...], version: int, flexible: bool) -> None:
        present = [f for f in fields if version in f.versions]
        self.untagged = [f for f in present if not (flexible and f.is_tagged_in(version))]
        self.tagged = sorted(
            (f for f in present if flexible and f.is_tagged_in(version)), key=_tag_number
        )


def _tag_number(spec: FieldSpec) -> int:
    """The tag of a field known to be tagged."""
    if spec.tag is None:
        raise ValueError(f"field {spec.name} has no tag")
    return spec.tag


class _Batch(NamedTuple):
    """Fixed-width fields read or written with one struct call, together with the classic
    length prefix of the variable field after them (`tail`, whose prefix format is `tail_format`)."""

    run: list[FieldSpec]
    tail: FieldSpec | None
    tail_format: str  # "" when there is no tail


def _segments(fields: list[FieldSpec], version: int, flexible: bool) -> Iterator[_Batch | FieldSpec]:
    """Split untagged fields into batches (a fixed run and the classic prefix after it) and
    single fields that no struct call can cover."""
    i = 0
    while i < len(fields):
        run = []
        while i < len(fields) and _is_fixed(fields[i]):
            run.append(fields[i])
            i += 1
        tail = None
        tail_format = _classic_prefix(fields[i], version, flexible) if i < len(fields) else None
        if tail_format:
            tail = fields[i]
            i += 1
        if run or tail:
            yield _Batch(run, tail, tail_format or "")
        elif i < len(fields):
            yield fields[i]
            i += 1


def _classic_prefix(spec: FieldSpec, version: int, flexible: bool) -> str | None:
    kind = _kind(spec)
    if kind not in _CLASSIC_PREFIX or spec.is_compact_in(version, flexible):
        return None
    return _CLASSIC_PREFIX[kind]


def _run_format(run: list[FieldSpec]) -> str:
    return "".join(FIXED_WIDTH_TYPES[f.type] for f in run)


def _run_size(fmt: str) -> int:
    return struct.calcsize(">" + fmt)


# ---------------------------------------------------------------------------- decoding


class _DecoderBuilder:
    def __init__(self, src: _Source, version: int, flexible: bool) -> None:
        self.src = src
        self.version = version
        self.flexible = flexible
        self.uses_records = False

    def struct(self, fields: tuple[FieldSpec, ...], depth: int) -> str:
        """Emit code reading a struct's fields at `pos`; return a dict expression of the result."""
        src = self.src
        layout = _Layout(fields, self.version, self.flexible)
        values: dict[str, str] = {}
        for segment in _segments(layout.untagged, self.version, self.flexible):
            if isinstance(segment, FieldSpec):
                var = src.local("v")
                self.field(segment, var, depth)
                values[segment.key] = var
                continue
            run, tail = segment.run, segment.tail
            names = [src.local("v") for _ in run]
            fmt = _run_format(run) + segment.tail_format
            length_var = ""
            if tail is not None:
                length_var = src.local("n")
                names.append(length_var)
            packer = src.packer(fmt)
            target = ", ".join(names) + ("," if len(names) == 1 else "")
            src.emit(depth, f"{target} = {packer}.unpack_from(data, pos)")
            src.emit(depth, f"pos += {_run_size(fmt)}")
            for spec, var in zip(run, names[: len(run)], strict=True):
                if spec.type == "uuid":
                    src.emit(depth, f"{var} = _uuid({var})")
                values[spec.key] = var
            if tail is not None:
                var = src.local("v")
                self.body(tail, var, length_var, depth)
                values[tail.key] = var
        if self.flexible:
            for spec in layout.tagged:
                var = src.local("t")
                src.emit(depth, f"{var} = {_fresh_default(src, spec)}")
                values[spec.key] = var
            self.tagged_section(layout.tagged, values, depth)
        members = ", ".join(f"{f.key!r}: {values.get(f.key) or _fresh_default(src, f)}" for f in fields)
        return "{" + members + "}"

    def tagged_section(self, tagged: list[FieldSpec], values: dict[str, str], depth: int) -> None:
        src = self.src
        count = src.local("nt")
        self.uvarint(count, depth)
        src.emit(depth, f"if {count}:")
        src.emit(depth + 1, f"for _ in range({count}):")
        inner = depth + 2
        tag, size, end = src.local("tag"), src.local("sz"), src.local("end")
        self.uvarint(tag, inner)
        self.uvarint(size, inner)
        src.emit(inner, f"{end} = pos + {size}")
        keyword = "if"
        for spec in tagged:
            src.emit(inner, f"{keyword} {tag} == {spec.tag}:")
            self.field(spec, values[spec.key], inner + 1)
            src.emit(inner + 1, f"if pos > {end}:")
            src.emit(inner + 2, f"raise _CodecError('tagged field {spec.name} overruns its size')")
            keyword = "elif"
        src.emit(inner, f"pos = {end}")

    def uvarint(self, var: str, depth: int) -> None:
        self.src.emit(depth, f"{var} = data[pos]")
        self.src.emit(depth, "pos += 1")
        self.src.emit(depth, f"if {var} > 127:")
        self.src.emit(depth + 1, f"{var}, pos = _uvarint_tail(data, pos, {var})")

    def length(self, spec: FieldSpec, compact: bool, depth: int) -> str:
        """Read a length/count prefix; the variable is negative for null."""
        var = self.src.local("n")
        if compact:
            self.uvarint(var, depth)
            self.src.emit(depth, f"{var} -= 1")
        else:
            packer = self.src.packer(_CLASSIC_PREFIX[_kind(spec)])
            self.src.emit(depth, f"{var}, = {packer}.unpack_from(data, pos)")
            self.src.emit(depth, f"pos += {_run_size(_CLASSIC_PREFIX[_kind(spec)])}")
        return var

    def field(self, spec: FieldSpec, var: str, depth: int) -> None:
        """Emit code reading one whole field (prefix included) into `var`."""
        src = self.src
        kind = _kind(spec)
        if _is_fixed(spec):
            fmt = FIXED_WIDTH_TYPES[spec.type]
            src.emit(depth, f"{var}, = {src.packer(fmt)}.unpack_from(data, pos)")
            src.emit(depth, f"pos += {_run_size(fmt)}")
            if spec.type == "uuid":
                src.emit(depth, f"{var} = _uuid({var})")
        elif kind == "struct":
            self.struct_field(spec, var, depth)
        else:
            compact = spec.is_compact_in(self.version, self.flexible)
            length_var = self.length(spec, compact, depth)
            self.body(spec, var, length_var, depth)

    def struct_field(self, spec: FieldSpec, var: str, depth: int) -> None:
        src = self.src
        if self.version in spec.nullable:
            marker = src.local("m")
            src.emit(depth, f"{marker} = data[pos]")
            src.emit(depth, "pos += 1")
            src.emit(depth, f"if {marker} > 127:")
            src.emit(depth + 1, f"{var} = None")
            src.emit(depth, "else:")
            depth += 1
        expression = self.struct(spec.fields, depth)
        src.emit(depth, f"{var} = {expression}")

    def null_or_fail(self, spec: FieldSpec, var: str, length_var: str, depth: int) -> None:
        """Handle a negative length: null where the field may be null, an error otherwise."""
        src = self.src
        src.emit(depth, f"if {length_var} < 0:")
        if self.version in spec.nullable:
            src.emit(depth + 1, f"{var} = None")
        else:
            src.emit(depth + 1, f"raise _CodecError('non-nullable field {spec.name} is null')")
        src.emit(depth, "else:")

    def body(self, spec: FieldSpec, var: str, n: str, depth: int) -> None:
        """Emit code reading a variable-width field's payload, its length already in `n`."""
        src = self.src
        kind = _kind(spec)
        self.null_or_fail(spec, var, n, depth)
        depth += 1
        if kind == "string":
            src.emit(depth, f"{var} = _str(data[pos:pos + {n}], 'utf-8')")
            src.emit(depth, f"pos += {n}")
        elif kind == "bytes":
            src.emit(depth, f"{var} = _bytes(data[pos:pos + {n}])")
            src.emit(depth, f"pos += {n}")
        elif kind == "records":
            self.uses_records = True
            src.emit(depth, f"{var} = mv[pos:pos + {n}]")
            src.emit(depth, f"pos += {n}")
        else:
            self.array(spec, var, n, depth)

    def array(self, spec: FieldSpec, var: str, n: str, depth: int) -> None:
        src = self.src
        element = spec.element_type
        src.emit(depth, f"if {n} > _len(data) - pos:")
        src.emit(depth + 1, f"raise _CodecError('array {spec.name} longer than the input')")
        if element in FIXED_WIDTH_TYPES and element != "uuid":
            fmt = FIXED_WIDTH_TYPES[element]
            size = _run_size(fmt)
            src.emit(depth, f"{var} = _list(_unpack_from('>%d{fmt}' % {n}, data, pos))")
            src.emit(depth, f"pos += {size} * {n}")
            return
        src.emit(depth, f"{var} = []")
        src.emit(depth, f"for _ in range({n}):")
        if element == "uuid":
            src.emit(depth + 1, f"{var}.append(_uuid(data[pos:pos + 16]))")
            src.emit(depth + 1, "pos += 16")
            return
        item = src.local("e")
        if spec.is_struct_array:
            expression = self.struct(spec.fields, depth + 1)
            src.emit(depth + 1, f"{var}.append({expression})")
            return
        element_spec = _element_spec(spec)
        self.field(element_spec, item, depth + 1)
        src.emit(depth + 1, f"{var}.append({item})")


def _element_spec(spec: FieldSpec) -> FieldSpec:
    """A scalar stand-in for one element of a primitive array (never null)."""
    return FieldSpec(
        name=spec.name + "[]",
        key=spec.key,
        type=spec.element_type,
        versions=spec.versions,
        nullable=NO_VERSIONS,
        tagged=NO_VERSIONS,
        tag=None,
        flexible_override=spec.flexible_override,
        raw_default=None,
    )


def compile_decoder(schema: MessageSchema, version: int) -> Callable[..., tuple[dict[str, Any], int]]:
    """Generate and compile ``decode(buf, offset=0) -> (dict, end)`` for one version."""
    src = _Source()
    builder = _DecoderBuilder(src, version, schema.is_flexible(version))
    # The body is generated first: only then is it known whether records occur.
    src.emit(2, "pos = offset")
    expression = builder.struct(schema.fields, 2)
    src.emit(2, "if pos > _len(data):")
    src.emit(3, "raise _CodecError('input truncated')")
    src.emit(2, f"return {expression}, pos")
    body, src.lines = src.lines, []
    src.emit(0, "def decode(buf, offset=0):")
    src.emit(1, "data = buf")
    src.emit(1, "try:")
    if builder.uses_records:
        src.emit(2, "mv = buf if type(buf) is _memoryview else _memoryview(buf)")
    src.lines.extend(body)
    src.emit(1, "except _CodecError:")
    src.emit(2, "raise")
    src.emit(1, "except _FAILURES as exc:")
    src.emit(2, f"raise _CodecError('cannot decode {schema.name} v{version}: %s' % (exc,)) from None")
    return src.compile("decode", f"<kbroker decode {schema.name} v{version}>")


# ---------------------------------------------------------------------------- encoding


class _EncoderBuilder:
    def __init__(self, src: _Source, version: int, flexible: bool) -> None:
        self.src = src
        self.version = version
        self.flexible = flexible

    def struct(self, fields: tuple[FieldSpec, ...], item: str, depth: int, w: str) -> None:
        """Emit code writing the dict in `item` to the bytearray named `w`."""
        src = self.src
        layout = _Layout(fields, self.version, self.flexible)
        for segment in _segments(layout.untagged, self.version, self.flexible):
            if isinstance(segment, FieldSpec):
                var = src.local("v")
                src.emit(depth, f"{var} = {self.get(item, segment)}")
                self.field(segment, var, depth, w)
                continue
            run, tail = segment.run, segment.tail
            args = [self.fixed_argument(item, spec) for spec in run]
            fmt = _run_format(run) + segment.tail_format
            if tail is not None:
                var = src.local("v")
                src.emit(depth, f"{var} = {self.get(item, tail)}")
                length_var = self.prepare(tail, var, depth)
                args.append(length_var)
            src.emit(depth, f"{w} += {src.packer(fmt)}.pack({', '.join(args)})")
            if tail is not None:
                self.payload(tail, var, length_var, depth, w)
        if self.flexible:
            self.tagged_section(layout.tagged, item, depth, w)

    def get(self, item: str, spec: FieldSpec) -> str:
        return f"{item}.get({spec.key!r}, {_literal(self.src, default_value(spec))})"

    def fixed_argument(self, item: str, spec: FieldSpec) -> str:
        if spec.type == "uuid":
            return f"{self.get(item, spec)}.bytes"
        return self.get(item, spec)

    def prepare(self, spec: FieldSpec, var: str, depth: int) -> str:
        """Emit code computing a variable field's length (-1 for null), converting strings to
        UTF-8 in place; return the length variable."""
        src = self.src
        length_var = src.local("n")
        nullable = self.version in spec.nullable
        convert = f"{var} = {var}.encode()" if _kind(spec) == "string" else None
        if nullable:
            src.emit(depth, f"if {var} is None:")
            src.emit(depth + 1, f"{length_var} = -1")
            src.emit(depth, "else:")
            depth += 1
        else:
            src.emit(depth, f"if {var} is None:")
            src.emit(depth + 1, f"raise _CodecError('field {spec.name} may not be null in this version')")
        if convert:
            src.emit(depth, convert)
        src.emit(depth, f"{length_var} = _len({var})")
        return length_var

    def payload(self, spec: FieldSpec, var: str, length_var: str, depth: int, w: str) -> None:
        """Emit code writing a variable field's bytes or elements (its prefix already written)."""
        src = self.src
        kind = _kind(spec)
        src.emit(depth, f"if {length_var} > 0:")
        depth += 1
        if kind == "string" or kind == "bytes":
            src.emit(depth, f"{w} += {var}")
        elif kind == "records":
            if w == "w":
                # Hand the records object over as its own piece: never copied or joined here.
                src.emit(depth, "out.append(_bytes(w))")
                src.emit(depth, "flushed += _len(w) + " + length_var)
                src.emit(depth, "w.clear()")
                src.emit(depth, f"out.append({var})")
            else:
                src.emit(depth, f"{w} += {var}")
        else:
            self.elements(spec, var, depth, w)

    def elements(self, spec: FieldSpec, var: str, depth: int, w: str) -> None:
        src = self.src
        element = spec.element_type
        if element in FIXED_WIDTH_TYPES and element != "uuid":
            fmt = FIXED_WIDTH_TYPES[element]
            src.emit(depth, f"{w} += _pack('>%d{fmt}' % _len({var}), *{var})")
            return
        item = src.local("e")
        src.emit(depth, f"for {item} in {var}:")
        if spec.is_struct_array:
            self.struct(spec.fields, item, depth + 1, w)
        elif element == "uuid":
            src.emit(depth + 1, f"{w} += {item}.bytes")
        else:
            self.field(_element_spec(spec), item, depth + 1, w)

    def uvarint(self, expression: str, depth: int, w: str) -> None:
        var = self.src.local("u")
        self.src.emit(depth, f"{var} = {expression}")
        self.src.emit(depth, f"if 0 <= {var} < 128:")
        self.src.emit(depth + 1, f"{w}.append({var})")
        self.src.emit(depth, "else:")
        self.src.emit(depth + 1, f"{w} += _uvarint({var})")

    def field(self, spec: FieldSpec, var: str, depth: int, w: str) -> None:
        """Emit code writing one whole field whose value is in `var`."""
        src = self.src
        kind = _kind(spec)
        if _is_fixed(spec):
            fmt = FIXED_WIDTH_TYPES[spec.type]
            value = f"{var}.bytes" if spec.type == "uuid" else var
            src.emit(depth, f"{w} += {src.packer(fmt)}.pack({value})")
        elif kind == "struct":
            self.struct_field(spec, var, depth, w)
        else:
            length_var = self.prepare(spec, var, depth)
            if spec.is_compact_in(self.version, self.flexible):
                self.uvarint(f"{length_var} + 1", depth, w)
            else:
                prefix = _CLASSIC_PREFIX[kind]
                src.emit(depth, f"{w} += {src.packer(prefix)}.pack({length_var})")
            self.payload(spec, var, length_var, depth, w)

    def struct_field(self, spec: FieldSpec, var: str, depth: int, w: str) -> None:
        src = self.src
        if self.version in spec.nullable:
            src.emit(depth, f"if {var} is None:")
            src.emit(depth + 1, f"{w}.append(255)")
            src.emit(depth, "else:")
            depth += 1
            src.emit(depth, f"{w}.append(1)")
        else:
            src.emit(depth, f"if {var} is None:")
            src.emit(depth + 1, f"raise _CodecError('struct {spec.name} may not be null in this version')")
        self.struct(spec.fields, var, depth, w)

    def differs_from_default(self, spec: FieldSpec, var: str) -> str:
        default = default_value(spec)
        if spec.is_array:
            return f"{var} is not None" if default is None else f"({var} is None or _len({var}) > 0)"
        if default is None:
            return f"{var} is not None"
        return f"{var} != {_literal(self.src, default)}"

    def tagged_section(self, tagged: list[FieldSpec], item: str, depth: int, w: str) -> None:
        src = self.src
        if not tagged:
            src.emit(depth, f"{w}.append(0)")
            return
        values = []
        for spec in tagged:
            var = src.local("t")
            src.emit(depth, f"{var} = {self.get(item, spec)}")
            values.append(var)
        tests = [self.differs_from_default(spec, var) for spec, var in zip(tagged, values, strict=True)]
        count = src.local("nt")
        src.emit(depth, f"{count} = " + " + ".join(f"({test})" for test in tests))
        src.emit(depth, f"if not {count}:")
        src.emit(depth + 1, f"{w}.append(0)")
        src.emit(depth, "else:")
        self.uvarint(count, depth + 1, w)
        for spec, var, test in zip(tagged, values, tests, strict=True):
            src.emit(depth + 1, f"if {test}:")
            sub = src.local("tw")
            src.emit(depth + 2, f"{sub} = _bytearray()")
            self.field(spec, var, depth + 2, sub)
            self.uvarint(str(spec.tag), depth + 2, w)
            self.uvarint(f"_len({sub})", depth + 2, w)
            src.emit(depth + 2, f"{w} += {sub}")


def compile_encoder(schema: MessageSchema, version: int) -> Callable[[Mapping[str, Any], list[Any]], int]:
    """Generate and compile ``encode_chunks(msg, out) -> total length`` for one version."""
    src = _Source()
    builder = _EncoderBuilder(src, version, schema.is_flexible(version))
    src.emit(0, "def encode_chunks(msg, out):")
    src.emit(1, "try:")
    src.emit(2, "w = _bytearray()")
    src.emit(2, "flushed = 0")
    builder.struct(schema.fields, "msg", 2, "w")
    if has_records(schema.fields, version):
        # Records fields are handed over as pieces of their own; skip an empty tail.
        src.emit(2, "if w:")
        src.emit(3, "out.append(_bytes(w))")
    else:
        src.emit(2, "out.append(_bytes(w))")
    src.emit(2, "return flushed + _len(w)")
    src.emit(1, "except _CodecError:")
    src.emit(2, "raise")
    src.emit(1, "except _FAILURES as exc:")
    src.emit(2, f"raise _CodecError('cannot encode {schema.name} v{version}: %r' % (exc,)) from None")
    return src.compile("encode_chunks", f"<kbroker encode {schema.name} v{version}>")


def has_records(fields: tuple[FieldSpec, ...], version: int) -> bool:
    """Whether any records field is on the wire at this version (at any depth)."""
    for spec in fields:
        if version not in spec.versions:
            continue
        if spec.type == "records" or has_records(spec.fields, version):
            return True
    return False
