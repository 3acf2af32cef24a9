"""Broker metrics: the plain counters the hot paths bump (`stats.py`) and the Prometheus
endpoint that exposes them (`exporter.py`, imported only when `metrics.listener` is set).

This package sits on the ground floor beside `protocol`: it imports nothing of kbroker, so the
replica manager and the api layer can count into it. What the counters and gauges are called
follows the Prometheus JMX exporter's rule for Kafka's MBeans (docs/DESIGN.md, "Metrics").
"""
