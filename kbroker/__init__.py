"""kbroker: a Kafka broker in Python that real Kafka clients use unchanged."""

__version__ = "0.1.0"
