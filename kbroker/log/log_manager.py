"""LogManager: every partition log of this broker, across the directories of `log.dirs`.

Per log dir: `.lock` (flock, one broker per dir), `meta.properties` (refuses another cluster's or
broker's dir), `.kafka_cleanshutdown` (written by `close`, removed once loaded; when present the
logs open without rescanning), `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`
and `replication-offset-checkpoint` (high watermarks, as ReplicaManager writes them).

A replica moving to another log dir (AlterReplicaLogDirs) has a future log there,
`<topic>-<p>.<uuid>-future` (`future_logs`, loaded again at start-up), which the replica layer
fills and then swaps in (`replace_current_with_future_log`); a partition not hosted yet may have a
preferred dir for its log (`maybe_update_preferred_log_dir`).

The broker's event loop calls `run_retention`, `checkpoint` and `flush_if_due` periodically,
`start_cleaner` to keep the log cleaner's task running once a log is compacted (log_cleaner.py,
compaction with its `cleaner-offset-checkpoint`), and `close` at shutdown. Plain code, apart from
handing rolled-segment fsyncs to a worker thread; nothing here knows leadership or the network.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kbroker.log.checkpoint import (
    LOG_START_OFFSET_CHECKPOINT_FILE,
    META_PROPERTIES_FILE,
    RECOVERY_POINT_CHECKPOINT_FILE,
    REPLICATION_OFFSET_CHECKPOINT_FILE,
    MalformedCheckpointError,
    read_offset_checkpoint,
    read_properties,
    write_offset_checkpoint,
    write_properties,
)
from kbroker.log.config import DEFAULT_PRODUCER_ID_EXPIRATION_MS, LogConfig
from kbroker.log.errors import (
    InconsistentClusterIdError,
    KafkaStorageException,
    LogDirLockedError,
    LogDirsOfflineError,
    LogError,
)
from kbroker.log.log_dir_failure_channel import LogDirFailureChannel
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from types import ModuleType

    from kbroker.log.log_cleaner import LogCleaner
    from kbroker.log.unified_log import UnifiedLog

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
STRAY_DIR_SUFFIX = "-stray"

TopicPartition = tuple[str, int]


def _log_module() -> ModuleType:
    """kbroker.log.unified_log, imported with the first log: a broker starting on an empty data
    directory answers its first requests without loading the segment and record code."""
    from kbroker.log import unified_log

    return unified_log


def _now_ms() -> int:
    """segment.now_ms's clock, without importing the log stack: the maintenance task asks for the
    time every second, and an idle broker without logs must not load the segment code for it."""
    return int(time.time() * 1000)


def read_meta_properties(log_dirs: list[str]) -> dict[str, str] | None:
    """meta.properties of the first log dir that has one (to learn broker.id / cluster.id early)."""
    for log_dir in log_dirs:
        properties = read_properties(os.path.join(log_dir, META_PROPERTIES_FILE))
        if properties is not None:
            return properties
    return None


def _run_in_worker_thread(call: Callable[[], None], done: Callable[[BaseException | None], None]) -> None:
    """Run the blocking `call` in the event loop's default executor, then `done(its error or None)`
    on the loop; both here and now when no loop runs."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:
        try:
            call()
        except OSError as error:
            done(error)
            return
        done(None)
        return

    def finished(future: asyncio.Future) -> None:
        if future.cancelled():
            done(asyncio.CancelledError())
            return
        done(future.exception())

    loop.run_in_executor(None, call).add_done_callback(finished)


def _flock_holder(fd: int) -> int | None:
    """The pid holding an flock on the open file `fd`, from /proc/locks (Linux); None if unknown.
    A line reads `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`: pid, then major:minor:inode."""
    stat = os.fstat(fd)
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    try:
        with open("/proc/locks") as locks:
            for line in locks:
                fields = line.split()
                if "FLOCK" in fields and len(fields) > 5 and fields[5] == device:
                    return int(fields[4])
    except (OSError, ValueError):
        pass
    return None


class LogManager:
    """Owns the UnifiedLogs of all partitions stored on this broker."""

    def __init__(
        self,
        log_dirs: list[str],
        *,
        cluster_id: str,
        broker_id: int,
        default_config: LogConfig | None = None,
        topic_config: Callable[[str], LogConfig] | None = None,
        producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
        broker_epoch: int = -1,
        log_dir_failure_channel: LogDirFailureChannel | None = None,
    ):
        if not log_dirs:
            raise ValueError("log.dirs is empty")
        self.log_dirs = [os.path.abspath(d) for d in log_dirs]
        self.cluster_id = cluster_id
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch
        self.default_config = default_config or LogConfig()
        self._topic_config = topic_config
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self.log_dir_failure_channel = log_dir_failure_channel or LogDirFailureChannel()
        self.logs: dict[TopicPartition, UnifiedLog] = {}
        self._log_dir_of: dict[TopicPartition, str] = {}
        # Kafka's futureLogs: the copies of replicas moving to another log dir (AlterReplicaLogDirs),
        # and preferredLogDirs: where a partition not hosted yet is to be created.
        self.future_logs: dict[TopicPartition, UnifiedLog] = {}
        self._preferred_log_dirs: dict[TopicPartition, str] = {}
        self._logs_to_delete: list[tuple[int, UnifiedLog]] = []
        self._lock_fds: dict[str, int] = {}
        self.had_clean_shutdown: dict[str, bool] = {}
        self._closed = False
        try:
            for log_dir in self.log_dirs:
                self._startup_step(log_dir, self._open_log_dir, "Failed to create or validate data directory")
            for log_dir in self.live_log_dirs:
                self._startup_step(log_dir, self._load_logs, "Error while loading log dir")
            if not self.live_log_dirs:
                raise LogDirsOfflineError(
                    f"Shutdown broker because none of the specified log dirs from {', '.join(self.log_dirs)} "
                    "can be created or validated"
                )
        except BaseException:
            self._release_locks()
            raise
        self._cleaner: LogCleaner | None = None  # see `cleaner`

    # ------------------------------------------------------------------ startup

    def _startup_step(self, log_dir: str, step: Callable[[str], None], message: str) -> None:
        """Kafka's start with failed disks: a dir whose creation, validation or loading hits an
        I/O error is offline (its logs unloaded); the broker starts with the others."""
        try:
            step(log_dir)
        except OSError as error:
            self._dir_failed(log_dir, message, error)
            self.handle_log_dir_failure(log_dir)

    def _open_log_dir(self, log_dir: str) -> None:
        os.makedirs(log_dir, exist_ok=True)
        self._lock(log_dir)
        self._check_meta_properties(log_dir)

    def _lock(self, log_dir: str) -> None:
        fd = os.open(os.path.join(log_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            holder = _flock_holder(fd)
            os.close(fd)
            who = "another process" if holder is None else f"another process (pid {holder})"
            raise LogDirLockedError(
                f"{log_dir} is locked by {who}: is another broker using this directory?"
            ) from err
        self._lock_fds[log_dir] = fd

    def _release_locks(self) -> None:
        for fd in self._lock_fds.values():
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self._lock_fds.clear()

    def _check_meta_properties(self, log_dir: str) -> None:
        path = os.path.join(log_dir, META_PROPERTIES_FILE)
        properties = read_properties(path)
        if properties is None:
            write_properties(
                path, {"cluster.id": self.cluster_id, "version": "0", "broker.id": str(self.broker_id)}
            )
            return
        if properties.get("cluster.id") not in (None, self.cluster_id):
            raise InconsistentClusterIdError(
                f"the cluster id {self.cluster_id} does not match the cluster id {properties['cluster.id']} "
                f"stored in {path}; this log dir belongs to another cluster"
            )
        if properties.get("broker.id") not in (None, str(self.broker_id)):
            raise InconsistentClusterIdError(
                f"the broker id {self.broker_id} does not match the broker id {properties['broker.id']} in {path}"
            )
        if "cluster.id" not in properties or "broker.id" not in properties:
            properties.update(
                {"cluster.id": self.cluster_id, "version": "0", "broker.id": str(self.broker_id)}
            )
            write_properties(path, properties)

    def _load_logs(self, log_dir: str) -> None:
        clean_marker = os.path.join(log_dir, CLEAN_SHUTDOWN_FILE)
        had_clean_shutdown = os.path.exists(clean_marker)
        self.had_clean_shutdown[log_dir] = had_clean_shutdown
        recovery_points = self._read_checkpoint_or_empty(log_dir, RECOVERY_POINT_CHECKPOINT_FILE)
        log_starts = self._read_checkpoint_or_empty(log_dir, LOG_START_OFFSET_CHECKPOINT_FILE)
        high_watermarks = self._read_checkpoint_or_empty(log_dir, REPLICATION_OFFSET_CHECKPOINT_FILE)
        started = time.monotonic()
        names = sorted(os.listdir(log_dir))
        if not had_clean_shutdown and names:
            # Recovery re-reads every segment from the recovery point on and can take a while,
            # before the broker listens: say so, as Kafka does, rather than fall silent.
            log.info("recovering the logs in %s: no clean shutdown file, the last run did not stop cleanly", log_dir)
        for name in names:
            path = os.path.join(log_dir, name)
            if not os.path.isdir(path):
                continue
            logs = _log_module()
            if name.endswith(logs.DELETE_DIR_SUFFIX):
                log.info("removing %s left by an earlier topic deletion", path)
                import shutil  # here: with its codec modules, a few ms of every start-up otherwise

                shutil.rmtree(path, ignore_errors=True)
                continue
            if name.endswith(STRAY_DIR_SUFFIX):
                continue
            try:
                topic_partition = logs.parse_topic_partition(name)
            except ValueError:
                log.warning("skipping %s: not a partition directory", path)
                continue
            is_future = name.endswith(logs.FUTURE_DIR_SUFFIX)
            loaded = self.future_logs if is_future else self.logs
            if topic_partition in loaded:
                # Kafka's message: a dir failed while the current replica was being replaced.
                raise RuntimeError(
                    f"duplicate log directories for {name}: {loaded[topic_partition].directory} and {path}; "
                    "a log directory may have failed while a replica was moved between log directories: "
                    "delete one of the two (preferably in the directory known to have failed recently)"
                )
            unified_log = logs.UnifiedLog(
                path,
                self.config_for(topic_partition[0]),
                recovery_point=recovery_points.get(topic_partition, 0),
                log_start_offset=log_starts.get(topic_partition, 0),
                had_clean_shutdown=had_clean_shutdown,
                producer_id_expiration_ms=self.producer_id_expiration_ms,
                log_dir_failure_channel=self.log_dir_failure_channel,
            )
            if is_future:  # resumed once the partition is hosted again (ReplicaManager)
                log.info("loaded the future log %s of a replica moving to %s", path, log_dir)
                self.future_logs[topic_partition] = unified_log
                continue
            if topic_partition in high_watermarks:
                unified_log.update_high_watermark(high_watermarks[topic_partition])
            self.logs[topic_partition] = unified_log
            self._log_dir_of[topic_partition] = log_dir
        if had_clean_shutdown:
            os.remove(clean_marker)
        loaded_here = sum(1 for d in self._log_dir_of.values() if d == log_dir)
        log.info("loaded %d logs in %s in %.0f ms%s", loaded_here, log_dir, (time.monotonic() - started) * 1000,
                 "" if had_clean_shutdown else " (recovered)")

    @staticmethod
    def _read_checkpoint_or_empty(log_dir: str, name: str) -> dict[TopicPartition, int]:
        try:
            return read_offset_checkpoint(os.path.join(log_dir, name))
        except MalformedCheckpointError as err:
            log.warning("ignoring %s: %s", name, err)
            return {}

    # ------------------------------------------------------------------ logs

    def config_for(self, topic: str) -> LogConfig:
        return self._topic_config(topic) if self._topic_config is not None else self.default_config

    def get_log(self, topic: str, partition: int) -> UnifiedLog | None:
        return self.logs.get((topic, partition))

    def all_logs(self) -> list[UnifiedLog]:
        return list(self.logs.values())

    def log_dir_of(self, topic: str, partition: int) -> str | None:
        return self._log_dir_of.get((topic, partition))

    @property
    def live_log_dirs(self) -> list[str]:
        """The log dirs not taken offline by an I/O error (Kafka's liveLogDirs)."""
        return [d for d in self.log_dirs if not self.log_dir_failure_channel.has_offline_log_dir(d)]

    def is_offline(self, log_dir: str) -> bool:
        return self.log_dir_failure_channel.has_offline_log_dir(log_dir)

    def get_or_create_log(
        self,
        topic: str,
        partition: int,
        topic_id: str | None = None,
        config: LogConfig | None = None,
        is_new: bool = True,
    ) -> UnifiedLog:
        """The partition's log, created (empty) in the live log dir holding the fewest partitions.
        A given `config` replaces the existing log's; a different topic id is INCONSISTENT_TOPIC_ID.
        A log missing here for a partition that is not new may be in an offline dir: then it is
        not created elsewhere (KafkaStorageException), as Kafka's getOrCreateLog refuses."""
        key = (topic, partition)
        existing = self.logs.get(key)
        if existing is not None and self.is_offline(existing.parent_dir):
            raise KafkaStorageException(f"the log directory {existing.parent_dir} of {topic}-{partition} is offline")
        if existing is not None:
            if config is not None:
                existing.config = config
            if topic_id is not None:
                if existing.topic_id not in (None, topic_id):
                    raise LogError(
                        Errors.INCONSISTENT_TOPIC_ID,
                        f"{topic}-{partition} has topic id {existing.topic_id}, not {topic_id}",
                    )
                if existing.topic_id is None:
                    existing.assign_topic_id(topic_id)
            return existing
        live = self.live_log_dirs
        if not live or (not is_new and len(live) < len(self.log_dirs)):
            offline = ", ".join(d for d in self.log_dirs if d not in live)
            raise KafkaStorageException(
                f"Can not create log for {topic}-{partition} because log directories {offline} are offline"
            )
        preferred = self._preferred_log_dirs.get(key)
        if preferred in live:  # AlterReplicaLogDirs named it before the replica was created here
            log_dir = preferred
        else:
            log_dir = self._least_loaded(live)
        unified_log = self._create_log(topic, partition, log_dir, _log_module().log_dir_name(topic, partition),
                                       config or self.config_for(topic), topic_id)
        self._preferred_log_dirs.pop(key, None)  # satisfied
        self.logs[key] = unified_log
        self._log_dir_of[key] = log_dir
        return unified_log

    def _least_loaded(self, live: list[str]) -> str:
        """The live dir holding the fewest logs (Kafka's nextLogDirs); with one dir, no count: a
        count per creation made creating 10,000 partitions quadratic."""
        if len(live) == 1:
            return live[0]
        held = collections.Counter(self._log_dir_of.values())
        return min(live, key=lambda d: held[d])

    def _create_log(self, topic: str, partition: int, log_dir: str, name: str, config: LogConfig,
                    topic_id: str | None) -> UnifiedLog:
        """A new empty log in `log_dir`; an I/O error takes that dir offline (KafkaStorageException)."""
        try:
            return _log_module().UnifiedLog(
                os.path.join(log_dir, name),
                config,
                topic_id=topic_id,
                had_clean_shutdown=True,
                producer_id_expiration_ms=self.producer_id_expiration_ms,
                log_dir_failure_channel=self.log_dir_failure_channel,
            )
        except OSError as error:
            self._dir_failed(log_dir, f"Error while creating log for {topic}-{partition}", error)
            raise KafkaStorageException(f"cannot create a log for {topic}-{partition} in {log_dir}: {error}") from error

    # ------------------------------------------------------------------ future logs (moves between log dirs)

    def maybe_update_preferred_log_dir(self, topic: str, partition: int, log_dir: str) -> None:
        """Remember `log_dir` for the partition's log unless its current or future log is there
        already (Kafka's maybeUpdatePreferredLogDir); a log created later goes there."""
        key = (topic, partition)
        if self._log_dir_of.get(key) == log_dir or self.future_log_dir_of(topic, partition) == log_dir:
            return
        self._preferred_log_dirs[key] = log_dir

    def get_future_log(self, topic: str, partition: int) -> UnifiedLog | None:
        return self.future_logs.get((topic, partition))

    def future_log_dir_of(self, topic: str, partition: int) -> str | None:
        future = self.future_logs.get((topic, partition))
        return future.parent_dir if future is not None else None

    def create_future_log(self, topic: str, partition: int, log_dir: str) -> UnifiedLog:
        """The partition's future log in `log_dir` (Kafka's getOrCreateLog with isFuture): an
        empty log with the current one's config and topic id, filled by the
        ReplicaAlterLogDirsManager. Refused (KafkaStorageException) while any log dir is offline,
        so that no partition gets future logs in two dirs."""
        key = (topic, partition)
        current = self.logs.get(key)
        if current is None:
            raise LogError(Errors.REPLICA_NOT_AVAILABLE, f"{topic}-{partition} has no log on this broker")
        if current.parent_dir == log_dir:
            raise ValueError(f"cannot create the future log of {topic}-{partition} in its current log dir")
        existing = self.future_logs.get(key)
        if existing is not None:
            return existing
        offline = [d for d in self.log_dirs if self.is_offline(d)]
        if offline:
            raise KafkaStorageException(
                f"Can not create the future log for {topic}-{partition} because log directories "
                f"{', '.join(offline)} are offline"
            )
        name = _log_module().log_future_dir_name(topic, partition)
        future = self._create_log(topic, partition, log_dir, name, current.config, current.topic_id)
        self.future_logs[key] = future
        self._preferred_log_dirs.pop(key, None)
        log.info("created the future log of %s-%d in %s", topic, partition, log_dir)
        return future

    def abandon_future_log(self, topic: str, partition: int) -> bool:
        """Drop the partition's future log (a move cancelled or redirected: Kafka's
        removeFutureLocalReplica), its directory renamed `-delete` and removed later. A rename
        that fails takes that dir offline; the log is forgotten all the same."""
        future = self.future_logs.pop((topic, partition), None)
        if future is None:
            return False
        try:
            future.rename_dir(_log_module().log_delete_dir_name(topic, partition))
        except KafkaStorageException:
            with contextlib.suppress(OSError):
                future.close_handlers()
            return True
        self._logs_to_delete.append((_now_ms() + future.config.file_delete_delay_ms, future))
        log.info("abandoned the future log of %s-%d in %s", topic, partition, future.parent_dir)
        return True

    def replace_current_with_future_log(self, topic: str, partition: int) -> UnifiedLog:
        """Kafka's replaceCurrentWithFutureLog: the caught-up future log takes the current log's
        name in its dir and its place here (high watermark included); the old log is renamed
        `-delete` and removed after file.delete.delay.ms, so fetches still reading its files
        finish. The caller holds off appends (it runs without awaiting on the event loop).
        The future dir is renamed first: a crash between the two renames leaves two current
        logs, which the next start refuses with Kafka's advice, never a lost log."""
        key = (topic, partition)
        source = self.logs.get(key)
        future = self.future_logs.get(key)
        if source is None:
            raise KafkaStorageException(f"The current replica for {topic}-{partition} is offline")
        if future is None:
            raise KafkaStorageException(f"The future replica for {topic}-{partition} is offline")
        try:
            future.rename_dir(_log_module().log_dir_name(topic, partition))
        except KafkaStorageException:  # its dir went offline: the move is over, the current log stays
            self.future_logs.pop(key, None)
            with contextlib.suppress(OSError):
                future.close_handlers()
            raise
        future.update_high_watermark(source.high_watermark)
        del self.future_logs[key]
        self.logs[key] = future
        source_dir = self._log_dir_of[key]
        self._log_dir_of[key] = future.parent_dir
        if self._cleaner is not None:  # else the entry is read from any dir at the next start
            try:
                self._cleaner.alter_checkpoint_dir(source_dir, future.parent_dir)
            except OSError as error:
                self._dir_failed(future.parent_dir, "Disk error while writing the cleaner checkpoint", error)
        try:
            source.rename_dir(_log_module().log_delete_dir_name(topic, partition))
        except KafkaStorageException:  # that dir is offline now (reported); the moved log serves
            with contextlib.suppress(OSError):
                source.close_handlers()
        else:
            self._logs_to_delete.append((_now_ms() + source.config.file_delete_delay_ms, source))
            self._checkpoint_dir(source_dir)
        self._checkpoint_dir(future.parent_dir)
        log.info("The current replica of %s-%d is replaced with the future replica in %s",
                 topic, partition, future.parent_dir)
        return future

    def update_topic_config(self, topic: str, config: LogConfig) -> None:
        """Apply changed topic configs to the topic's open logs, future logs included (new
        segments follow them)."""
        for (log_topic, _partition), unified_log in [*self.logs.items(), *self.future_logs.items()]:
            if log_topic == topic:
                unified_log.config = config

    def delete_log(self, topic: str, partition: int, now: int | None = None) -> bool:
        """Rename to `<topic>-<p>.<uuid>-delete` (the topic shortened to fit 255 bytes) now;
        remove after file.delete.delay.ms. The log leaves this manager only once renamed: a rename
        that fails (EIO) takes its directory offline and raises KafkaStorageException."""
        key = (topic, partition)
        self.abandon_future_log(topic, partition)  # Kafka's stopReplicas deletes both
        self._preferred_log_dirs.pop(key, None)
        unified_log = self.logs.get(key)
        if unified_log is None:
            return False
        unified_log.rename_dir(_log_module().log_delete_dir_name(topic, partition))
        del self.logs[key]
        log_dir = self._log_dir_of.pop(key)
        try:
            self.cleaner.forget_log(key, log_dir)
        except OSError as error:  # the renamed log is gone all the same; its dir is not healthy
            self._dir_failed(log_dir, "Disk error while writing the cleaner checkpoint", error)
        due = (_now_ms() if now is None else now) + unified_log.config.file_delete_delay_ms
        self._logs_to_delete.append((due, unified_log))
        self._checkpoint_dir(log_dir)
        return True

    # ------------------------------------------------------------------ periodic tasks

    def run_retention(self, now: int | None = None) -> int:
        """Delete old segments of every log, expire producer ids, remove deleted files that are due.
        Returns the number of segments deleted."""
        now = _now_ms() if now is None else now
        deleted = 0
        for unified_log in list(self.logs.values()):
            with contextlib.suppress(KafkaStorageException):  # its directory went offline, logged once
                deleted += unified_log.delete_old_segments(now)
                unified_log.delete_pending_files(now)
                unified_log.remove_expired_producers(now)
        self.delete_due_logs(now)
        return deleted

    def delete_due_logs(self, now: int | None = None) -> int:
        """Remove `-delete` directories whose file.delete.delay.ms has passed (Kafka runs this on
        its own schedule, not with retention); returns how many were removed."""
        now = _now_ms() if now is None else now
        due = [e for e in self._logs_to_delete if e[0] <= now]
        for entry in due:
            self._logs_to_delete.remove(entry)
            entry[1].delete()
        return len(due)

    @property
    def cleaner(self) -> LogCleaner:
        """The log cleaner, imported and built when first needed: a broker without compacted logs
        (most start that way) would only keep it idle."""
        if self._cleaner is None:
            from kbroker.log.log_cleaner import LogCleaner

            self._cleaner = LogCleaner(self)
        return self._cleaner

    def start_cleaner(self, settings: Callable[[str], Any]) -> None:
        """Keep the log cleaner's task running on the current event loop once any log is compacted
        (a no-op while it runs, or when log.cleaner.enable is false or log.cleaner.threads is 0).
        `settings` reads the log.cleaner.* settings by their Kafka names (KafkaConfig.get)."""
        if self._cleaner is None and not any(unified_log.config.compact for unified_log in self.logs.values()):
            return
        from kbroker.log.log_cleaner import CleanerConfig

        self.cleaner.start(CleanerConfig.from_settings(settings))

    def checkpoint(self) -> None:
        """Write the recovery point, log start offset and high watermark checkpoints of every live
        dir; one that cannot be written takes its dir offline."""
        for log_dir in self.live_log_dirs:
            self._checkpoint_dir(log_dir)

    def _checkpoint_dir(self, log_dir: str) -> None:
        try:
            self._write_checkpoints(log_dir)
        except OSError as error:
            self._dir_failed(log_dir, "Disk error while writing checkpoints", error)

    def _dir_failed(self, log_dir: str, message: str, error: BaseException) -> None:
        self.log_dir_failure_channel.maybe_add_offline_log_dir(log_dir, f"{message} in directory {log_dir}", error)

    def _future_logs_in(self, log_dir: str) -> dict[TopicPartition, UnifiedLog]:
        return {key: future for key, future in self.future_logs.items() if future.parent_dir == log_dir}

    def _write_checkpoints(self, log_dir: str) -> None:
        held = {key: self.logs[key] for key, d in self._log_dir_of.items() if d == log_dir}
        # A future log is never in the same dir as its current one: both fit one checkpoint file,
        # as in Kafka (high watermarks are the current replicas' alone).
        with_future = {**held, **self._future_logs_in(log_dir)}
        write_offset_checkpoint(
            os.path.join(log_dir, RECOVERY_POINT_CHECKPOINT_FILE),
            {key: unified_log.recovery_point for key, unified_log in with_future.items()},
        )
        write_offset_checkpoint(
            os.path.join(log_dir, LOG_START_OFFSET_CHECKPOINT_FILE),
            {
                key: unified_log.log_start_offset
                for key, unified_log in with_future.items()
                if unified_log.log_start_offset > unified_log.log_segments()[0].base_offset
            },
        )
        write_offset_checkpoint(
            os.path.join(log_dir, REPLICATION_OFFSET_CHECKPOINT_FILE),
            {key: unified_log.high_watermark for key, unified_log in held.items()},
        )

    def flush_if_due(self, now: int | None = None) -> int:
        """Apply flush.ms to every log, and fsync rolled segments in a worker thread while the loop
        goes on (here and now when no event loop runs: tools and tests); drop the appends
        RECENT_APPENDS kept that are no longer recent. Returns how many logs flushed or started to."""
        now = _now_ms() if now is None else now
        count = 0
        if self.logs:  # the log stack is imported (start-up imports only what it needs)
            from kbroker.log.segment import RECENT_APPENDS

            RECENT_APPENDS.drop_idle(time.monotonic())
        for unified_log in [*self.logs.values(), *self.future_logs.values()]:
            try:
                flushed = unified_log.flush_if_due(now)
            except KafkaStorageException:  # its directory went offline, logged once
                continue
            rolled = unified_log.flush_rolled_segments_elsewhere()
            if rolled is not None:
                _run_in_worker_thread(*rolled)
            if flushed or rolled is not None:
                count += 1
        return count

    def handle_log_dir_failure(self, log_dir: str) -> list[TopicPartition]:
        """Kafka's LogManager.handleLogDirFailure: forget the logs of an offline dir (closing their
        files, no flush: the next start recovers them), stop deleting there, release its lock.
        Returns the partitions that went offline with it. Halting the broker when no dir is
        left is the caller's (kbroker/server.py)."""
        offline = sorted(key for key, held in self._log_dir_of.items() if held == log_dir)
        for key in offline:
            unified_log = self.logs.pop(key)
            del self._log_dir_of[key]
            with contextlib.suppress(OSError):
                unified_log.close_handlers()
        for key in self._future_logs_in(log_dir):  # moves into this dir are abandoned; the replicas stay
            future = self.future_logs.pop(key)
            with contextlib.suppress(OSError):
                future.close_handlers()
        self._logs_to_delete = [(due, gone) for due, gone in self._logs_to_delete if gone.parent_dir != log_dir]
        fd = self._lock_fds.pop(log_dir, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor drops its flock
        log.warning(
            "Logs for partitions %s are offline due to failure on log directory %s",
            ",".join(f"{topic}-{partition}" for topic, partition in offline) or "(none)",
            log_dir,
        )
        return offline

    def close(self) -> None:
        """Flush and close every log, write checkpoints and the clean-shutdown marker of each live
        dir, unlock. A dir failing now is left without its marker, so the next start recovers it."""
        if self._closed:
            return
        if self._cleaner is not None:
            self._cleaner.shutdown()
        for _due, unified_log in self._logs_to_delete:
            unified_log.delete()
        self._logs_to_delete.clear()
        for log_dir in self.live_log_dirs:
            try:
                self._close_log_dir(log_dir)
            except (OSError, KafkaStorageException) as error:
                self._dir_failed(log_dir, "Disk error while closing the logs", error)
        self._release_locks()
        self._closed = True

    def _close_log_dir(self, log_dir: str) -> None:
        in_dir = [self.logs[key] for key, held in self._log_dir_of.items() if held == log_dir]
        for unified_log in in_dir + list(self._future_logs_in(log_dir).values()):
            unified_log.flush()
            unified_log.close()
        self._write_checkpoints(log_dir)
        marker = os.path.join(log_dir, CLEAN_SHUTDOWN_FILE)
        with open(marker, "w", encoding="utf-8") as file:
            file.write(json.dumps({"version": 0, "brokerEpoch": self.broker_epoch}))
            file.flush()
            os.fsync(file.fileno())
