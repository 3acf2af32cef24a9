"""kbroker's sans-IO Kafka wire codec.

messages.py: request_codec / response_codec per (api key, version), compiled from Kafka's
JSON message schemas (schema.py, compiler.py); headers.py: request and response headers;
api_keys.py and errors.py: Kafka's API keys and error codes; message_types.py: a TypedDict per
message for the type checker, written by typegen.py from the same schemas. Nothing here does I/O.
"""
