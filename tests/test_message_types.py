"""The generated TypedDicts (kbroker/protocol/message_types.py): up to date with the schemas, and
describing what the decoder really returns (every key, and values of the declared types)."""

import types
import typing
import uuid

import pytest

from kbroker.protocol import message_types, typegen
from kbroker.protocol.messages import known_api_keys, request_codec, response_codec
from kbroker.protocol.schema import REGISTRY, FieldSpec, parse_schema_text


def test_the_checked_in_module_is_what_the_schemas_generate():
    with open(typegen.OUTPUT_PATH, encoding="utf-8") as file:
        checked_in = file.read()
    assert checked_in == typegen.generate(), "run: python -m kbroker.protocol.typegen"


def test_check_mode_reports_up_to_date(capsys):
    assert typegen.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


_SCHEMA = """
// a comment line, as in Kafka's files
{
  "apiKey": 99, "type": "response", "name": "ExampleResponse",
  "validVersions": "0-2", "flexibleVersions": "2+",
  "fields": [
    {"name": "ErrorCode", "type": "int16", "versions": "0+"},
    {"name": "Topics", "type": "[]TopicResult", "versions": "1+", "fields": [
      {"name": "TopicName", "type": "string", "versions": "1+", "nullableVersions": "2+"},
      {"name": "Leader", "type": "Leader", "versions": "1+", "default": "null", "fields": [
        {"name": "LeaderId", "type": "int32", "versions": "1+"}
      ]}
    ]},
    {"name": "Note", "type": "string", "versions": "2+", "taggedVersions": "2+", "tag": 0}
  ]
}
"""


def test_names_keys_nullability_and_totality_of_a_schema():
    example = typegen.message_dicts(parse_schema_text(_SCHEMA))
    assert [source.render() for source in example] == [
        "class ExampleResponseLeader(TypedDict, total=False):\n    leader_id: int  # v1+\n",
        "class ExampleResponseTopicResult(TypedDict, total=False):\n"
        "    topic_name: str | None  # v1+\n"
        "    leader: ExampleResponseLeader | None  # v1+\n",
        "class ExampleResponse(TypedDict, total=False):\n"
        "    error_code: int\n"
        "    topics: list[ExampleResponseTopicResult]  # v1+\n"
        "    note: str  # v2+, tag 0 in v2+\n",
    ]
    request = parse_schema_text(_SCHEMA.replace('"response"', '"request"').replace("Response", "Request"))
    assert typegen.message_dicts(request)[-1].render().startswith("class ExampleRequest(TypedDict):\n")


def test_requests_require_every_key_and_responses_none_of_theirs():
    for api_key in known_api_keys():
        request = getattr(message_types, REGISTRY.get(api_key, "request").name)
        response = getattr(message_types, REGISTRY.get(api_key, "response").name)
        assert request.__required_keys__ == frozenset(request.__annotations__)
        assert response.__optional_keys__ == frozenset(response.__annotations__)


# ------------------------------------------------------- the types describe decoded messages


def _hints(typed_dict: type) -> dict[str, object]:
    return typing.get_type_hints(typed_dict)


def _choices(hint: object) -> tuple[object, ...]:
    """The members of a union (X | None), or the type itself."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


_SAMPLES: dict[object, object] = {
    int: 1,
    bool: True,
    float: 1.5,
    str: "s",
    bytes: b"b",
    memoryview: memoryview(b"records"),
    uuid.UUID: uuid.UUID(int=7),
}


def _sample(hint: object) -> object:
    """A value of the hint's first non-None type, with one element in every list."""
    choice = next(c for c in _choices(hint) if c is not type(None))
    if typing.is_typeddict(choice):
        return {key: _sample(member) for key, member in _hints(choice).items()}
    if typing.get_origin(choice) is list:
        return [_sample(typing.get_args(choice)[0])]
    return _SAMPLES[choice]


def _null_sample(fields: tuple[FieldSpec, ...], version: int) -> dict:
    """Null in every field that may be null at this version (from the schema, not the types),
    with one element in every array of structs; every other field left to its default."""
    sample: dict = {}
    for spec in fields:
        if version not in spec.versions:
            continue
        if version in spec.nullable:
            sample[spec.key] = None
        elif spec.is_struct_array:
            sample[spec.key] = [_null_sample(spec.fields, version)]
        elif spec.is_struct:
            sample[spec.key] = _null_sample(spec.fields, version)
    return sample


def _mismatches(value: object, hint: object, path: str) -> list[str]:
    """Where a decoded value is not of the hinted type; [] when it is."""
    for choice in _choices(hint):
        if choice is type(None) and value is None:
            return []
        if typing.is_typeddict(choice) and type(value) is dict:
            return _dict_mismatches(value, choice, path)
        if typing.get_origin(choice) is list and type(value) is list:
            element = typing.get_args(choice)[0]
            return [m for i, item in enumerate(value) for m in _mismatches(item, element, f"{path}[{i}]")]
        if type(value) is choice:
            return []
    return [f"{path}: {type(value).__name__} is not {hint}"]


def _dict_mismatches(value: dict, typed_dict: type, path: str) -> list[str]:
    hints = _hints(typed_dict)
    if set(value) != set(hints):
        return [f"{path}: keys {sorted(set(value) ^ set(hints))} differ from {typed_dict.__name__}"]
    return [m for key, member in hints.items() for m in _mismatches(value[key], member, f"{path}.{key}")]


def _sample_versions() -> list[tuple[int, int]]:
    """Every API at its oldest and newest version and at its first flexible one."""
    cases = set()
    for api_key in known_api_keys():
        schema = REGISTRY.get(api_key, "request")
        cases.update({(api_key, schema.valid_versions.lo), (api_key, schema.valid_versions.hi)})
        if schema.flexible_versions.lo <= schema.valid_versions.hi:
            cases.add((api_key, max(schema.flexible_versions.lo, schema.valid_versions.lo)))
    return sorted(cases)


@pytest.mark.parametrize("codec_of", [request_codec, response_codec], ids=["request", "response"])
@pytest.mark.parametrize(("api_key", "version"), _sample_versions())
def test_decoded_messages_have_exactly_the_declared_keys_and_types(codec_of, api_key, version):
    codec = codec_of(api_key, version)
    typed_dict = getattr(message_types, codec.name)
    schema = REGISTRY.get(api_key, codec.kind)
    # Every default; then a value in every field; then null wherever the schema allows it.
    for message in ({}, _sample(typed_dict), _null_sample(schema.fields, version)):
        decoded, _ = codec.decode(codec.encode(message))
        assert _dict_mismatches(decoded, typed_dict, codec.name) == []


def test_a_wrong_type_is_noticed():
    """The check above can fail: a decoded message against the wrong TypedDict, or a wrong value."""
    decoded, _ = request_codec(0, 9).decode(request_codec(0, 9).encode({}))
    assert _dict_mismatches(decoded, message_types.FetchRequest, "p") != []
    decoded["acks"] = "1"
    assert _dict_mismatches(decoded, message_types.ProduceRequest, "p") == ["p.acks: str is not <class 'int'>"]
