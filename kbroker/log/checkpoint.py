"""Kafka's small text files next to the data: checkpoint files, partition.metadata, meta.properties.

Checkpoint files (CheckpointFile.java): line 1 the version (0), line 2 the entry count, then one
entry per line; written to `<name>.tmp`, fsynced, then atomically renamed over the old file.
  - per log dir, `topic partition offset` lines: recovery-point-offset-checkpoint,
    log-start-offset-checkpoint, replication-offset-checkpoint, cleaner-offset-checkpoint;
  - per partition, `epoch startOffset` lines: leader-epoch-checkpoint.
partition.metadata: `version: 0` / `topic_id: <base64 uuid>`.
meta.properties: Java Properties with a `#` date comment.

File formats only: no knowledge of logs or segments.
"""

from __future__ import annotations

import os
import time

from kbroker.log import io_faults

CHECKPOINT_VERSION = 0
RECOVERY_POINT_CHECKPOINT_FILE = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT_FILE = "log-start-offset-checkpoint"
REPLICATION_OFFSET_CHECKPOINT_FILE = "replication-offset-checkpoint"
CLEANER_OFFSET_CHECKPOINT_FILE = "cleaner-offset-checkpoint"
LEADER_EPOCH_CHECKPOINT_FILE = "leader-epoch-checkpoint"
PARTITION_METADATA_FILE = "partition.metadata"
META_PROPERTIES_FILE = "meta.properties"


class MalformedCheckpointError(ValueError):
    """A checkpoint file whose text is not in Kafka's format."""


def write_atomically(path: str, text: str) -> None:
    """Write via `<path>.tmp`, fsync, rename; then fsync the directory so the rename sticks."""
    tmp_path = path + ".tmp"
    io_faults.check("write", tmp_path)
    with open(tmp_path, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp_path, path)
    _fsync_directory(os.path.dirname(path) or ".")


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(path: str, entries: list[str]) -> None:
    write_atomically(
        path, "".join(f"{line}\n" for line in [str(CHECKPOINT_VERSION), str(len(entries)), *entries])
    )


def read_small_file(path: str) -> bytes:
    """A whole small file with plain system calls: loading reads three per partition (leader-epoch
    checkpoint, partition.metadata, producer snapshot), and io's file objects cost more than the reads."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_checkpoint(path: str) -> list[list[str]] | None:
    """Entries split on spaces, or None if the file does not exist."""
    try:
        lines = read_small_file(path).decode("utf-8").splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 2:
        raise MalformedCheckpointError(f"{path}: missing version or count line")
    if lines[0].strip() != str(CHECKPOINT_VERSION):
        raise MalformedCheckpointError(f"{path}: unsupported version {lines[0]!r}")
    try:
        count = int(lines[1])
    except ValueError as err:
        raise MalformedCheckpointError(f"{path}: bad count line {lines[1]!r}") from err
    entries = [line.split() for line in lines[2:] if line.strip()]
    if len(entries) != count:
        raise MalformedCheckpointError(f"{path}: expected {count} entries, found {len(entries)}")
    return entries


def write_offset_checkpoint(path: str, offsets: dict[tuple[str, int], int]) -> None:
    write_checkpoint(
        path, [f"{topic} {partition} {offset}" for (topic, partition), offset in sorted(offsets.items())]
    )


def read_offset_checkpoint(path: str) -> dict[tuple[str, int], int]:
    entries = read_checkpoint(path)
    if entries is None:
        return {}
    result = {}
    for entry in entries:
        if len(entry) != 3:
            raise MalformedCheckpointError(f"{path}: malformed line {' '.join(entry)!r}")
        try:
            result[(entry[0], int(entry[1]))] = int(entry[2])
        except ValueError as err:
            raise MalformedCheckpointError(f"{path}: malformed line {' '.join(entry)!r}") from err
    return result


def write_partition_metadata(directory: str, topic_id: str) -> None:
    write_atomically(os.path.join(directory, PARTITION_METADATA_FILE), f"version: 0\ntopic_id: {topic_id}\n")


def read_partition_metadata(directory: str) -> str | None:
    """The stored topic id, or None without a (readable) partition.metadata."""
    try:
        text = read_small_file(os.path.join(directory, PARTITION_METADATA_FILE)).decode("utf-8")
    except FileNotFoundError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    topic_id = fields.get("topic_id")
    return topic_id.strip() if topic_id is not None else None


def write_properties(path: str, properties: dict[str, str]) -> None:
    """Java Properties.store with an empty comment: `#`, `#<date>`, then key=value lines."""
    date = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime())
    lines = ["#", f"#{date}", *(f"{key}={value}" for key, value in properties.items())]
    write_atomically(path, "\n".join(lines) + "\n")


def read_properties(path: str) -> dict[str, str] | None:
    """Key/value pairs of a simple Java properties file (comments skipped), None if absent."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        return None
    result = {}
    for raw in lines:
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        separators = [index for index in (line.find("="), line.find(":")) if index >= 0]
        if not separators:
            result[line] = ""
            continue
        split = min(separators)
        result[line[:split].strip()] = line[split + 1 :].strip()
    return result
