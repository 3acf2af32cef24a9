"""Shared test support for tests/ and compat-tests/: processes, raw Kafka frames, client tools.

Modules:
- `wire`: build request frames with struct and read responses from a plain socket;
- `processes`: free ports, a kbroker subprocess (`BrokerProcess`) and a throwaway ZooKeeper;
- `tools`: run kcat and KafkaJS scripts, skipping when they are not installed;
- `fixtures`: the pytest fixtures and hooks both conftest.py files import.

Nothing here imports kbroker: tests talk to the broker only through its process and sockets.
"""
