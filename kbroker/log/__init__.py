"""kbroker's native log, stored exactly as Kafka stores it (KAFKA-FACTS §4, §5, §8).

records.py      record batch v2: parse headers, iterate/decode records, build batches and markers
legacy_records.py message formats v0/v1: Produce v0-2 up-conversion, Fetch v0-3 down-conversion
compression.py  gzip / snappy (xerial) / lz4 / zstd, at Kafka's compression levels
validator.py    LogValidator: leader-append checks with Kafka's error codes, offset assignment
index.py        OffsetIndex, TimeIndex, TransactionIndex
segment.py      LogSegment: one .log file with its indexes; reads return file regions
open_files.py   OPEN_FILES: the segment files held open at once, bounded (LRU), opened on first use
leader_epoch.py LeaderEpochFileCache (leader-epoch-checkpoint)
producer_state.py ProducerStateManager (idempotence, transactions, .snapshot files)
checkpoint.py   checkpoint files, partition.metadata, meta.properties
log_segments.py LogSegments: a partition's segments sorted by base offset
log_loader.py   LogLoader: start-up load, recovery, compaction swaps, producer-state rebuild
unified_log.py  UnifiedLog: one partition directory (append, read, roll, retention, truncation)
log_manager.py  LogManager: all partitions across log.dirs
log_cleaner.py  LogCleaner: compaction of cleanup.policy=compact topics
config.py       LogConfig: topic-level settings
errors.py       LogError (carries a Kafka error code), KafkaStorageException (KAFKA_STORAGE_ERROR)
log_dir_failure_channel.py LogDirFailureChannel: log dirs taken offline by I/O errors
io_faults.py    the seam through which tests inject disk faults (ENOSPC, EIO, EROFS)

Knows nothing of partition leadership, requests or sockets.
"""
