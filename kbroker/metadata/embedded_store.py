"""EmbeddedMetadataStore: the single-node metadata store, persisted under the first log dir.

Single-node mode has no ZooKeeper; what ZooKeeper would hold (the cluster id, topics and their
assignments, topic configs) lives in one JSON file, `kbroker-metadata.json`, rewritten
atomically (tmp file + rename) on every change. It must not know Kafka requests or the log.
"""

from __future__ import annotations

import json
import os
from typing import Any

from kbroker.metadata.metadata_cache import random_kafka_uuid, uuid_to_base64

STORE_FILE = "kbroker-metadata.json"


class EmbeddedMetadataStore:
    def __init__(self, log_dir: str) -> None:
        os.makedirs(log_dir, exist_ok=True)
        self.path = os.path.join(log_dir, STORE_FILE)
        self.data: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return {"version": 1}

    def _write(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f, sort_keys=True)
        os.replace(tmp, self.path)

    def get_or_create_cluster_id(self) -> str:
        cluster_id = self.data.get("cluster_id")
        if cluster_id is None:
            cluster_id = self.data["cluster_id"] = uuid_to_base64(random_kafka_uuid())
            self._write()
        return cluster_id
