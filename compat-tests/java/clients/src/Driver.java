// The Java client driven by compat-tests/java_driver.py: one JVM per test module, many commands.
//
// Started as `java -cp <jars>:<classes> Driver <bootstrap>`; reads one command a line on stdin,
// `<verb> [<name>] key=value ...`, and answers one line on stdout: `OK <json>` or
// `ERR <exception class> <message>` (the cause of an ExecutionException, so the test sees the
// Kafka exception the broker's error code became). Producers, consumers and Streams apps live in
// maps under the names the test gives them; one Admin client serves the admin verbs.
// Compiled against the oldest client the suite runs (4.0.x), so it uses no newer API.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.AbortTransactionSpec;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterClientQuotasOptions;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FeatureUpdate;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.MemberToRemove;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.SupportedVersionRange;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.UpdateFeaturesOptions;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.TopicPartitionReplica;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

public final class Driver {
    private static final long TIMEOUT_S = 30;
    private final String bootstrap;
    private Admin admin;
    private final Map<String, KafkaProducer<String, String>> producers = new HashMap<>();
    private final Map<String, KafkaConsumer<String, String>> consumers = new HashMap<>();
    private final Map<String, KafkaStreams> streams = new HashMap<>();

    private Driver(String bootstrap) {
        this.bootstrap = bootstrap;
        this.admin = newAdmin();
    }

    private Admin newAdmin() {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("default.api.timeout.ms", "30000");
        return Admin.create(props);
    }

    public static void main(String[] argv) throws Exception {
        Driver driver = new Driver(argv[0]);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        System.out.println("OK \"ready\"");
        System.out.flush();
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) continue;
            String answer;
            try {
                answer = "OK " + json(driver.run(line.trim().split(" ")));
            } catch (Throwable e) {
                Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
                String message = String.valueOf(cause.getMessage()).replace('\n', ' ');
                answer = "ERR " + cause.getClass().getSimpleName() + " " + message;
            }
            System.out.println(answer);
            System.out.flush();
            if (line.trim().equals("exit")) break;
        }
        driver.closeAll();
    }

    // ---- arguments -------------------------------------------------------------------------

    private static Map<String, String> args(String[] words, int from) {
        Map<String, String> out = new LinkedHashMap<>();
        for (int i = from; i < words.length; i++) {
            int eq = words[i].indexOf('=');
            out.put(words[i].substring(0, eq), words[i].substring(eq + 1));
        }
        return out;
    }

    private static List<String> list(String value) {
        return value == null || value.isEmpty() ? List.of() : Arrays.asList(value.split(","));
    }

    // "topic:partition" (the topic may not contain ':')
    private static TopicPartition tp(String value) {
        int colon = value.lastIndexOf(':');
        return new TopicPartition(value.substring(0, colon), Integer.parseInt(value.substring(colon + 1)));
    }

    private static List<TopicPartition> tps(String value) {
        List<TopicPartition> out = new ArrayList<>();
        for (String s : list(value)) out.add(tp(s));
        return out;
    }

    private static String key(TopicPartition tp) {
        return tp.topic() + ":" + tp.partition();
    }

    // configs given as k:v;k:v (values may hold ',' but not ';')
    private static Map<String, String> configs(String value) {
        Map<String, String> out = new LinkedHashMap<>();
        if (value == null || value.isEmpty()) return out;
        for (String kv : value.split(";")) {
            int colon = kv.indexOf(':');
            out.put(kv.substring(0, colon), kv.substring(colon + 1));
        }
        return out;
    }

    private Properties clientProps(Map<String, String> a) {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        for (Map.Entry<String, String> e : a.entrySet()) props.put(e.getKey(), e.getValue());
        return props;
    }

    private static <T> T get(Future<T> future) throws Exception {
        return future.get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    // ---- dispatch --------------------------------------------------------------------------

    private Object run(String[] w) throws Exception {
        String verb = w[0];
        String name = w.length > 1 && !w[1].contains("=") ? w[1] : null;
        Map<String, String> a = args(w, name == null ? 1 : 2);
        switch (verb) {
            case "exit": return "bye";
            case "admin_reset": {
                // a new Admin reads the cluster's metadata afresh: electLeaders does not look for
                // the controller again after NOT_CONTROLLER, with Kafka as with kbroker
                admin.close(Duration.ofSeconds(5));
                admin = newAdmin();
                return "reset";
            }
            case "producer": {
                a.putIfAbsent("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
                a.putIfAbsent("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
                producers.put(name, new KafkaProducer<>(clientProps(a)));
                return name;
            }
            case "send": return send(producers.get(name), a);
            case "init_txn": producers.get(name).initTransactions(); return name;
            case "begin_txn": producers.get(name).beginTransaction(); return name;
            case "commit_txn": producers.get(name).commitTransaction(); return name;
            case "abort_txn": producers.get(name).abortTransaction(); return name;
            case "send_offsets_txn": {  // group=g offsets=topic:partition:offset,...
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (String o : list(a.get("offsets"))) {
                    int last = o.lastIndexOf(':');
                    offsets.put(tp(o.substring(0, last)), new OffsetAndMetadata(Long.parseLong(o.substring(last + 1))));
                }
                producers.get(name).sendOffsetsToTransaction(offsets, new ConsumerGroupMetadata(a.get("group")));
                return name;
            }
            case "close_producer": producers.remove(name).close(Duration.ofSeconds(TIMEOUT_S)); return name;
            case "producer_metrics": {  // group=producer-metrics names=produce-throttle-time-max,...
                Map<String, Object> out = new TreeMap<>();
                List<String> wanted = list(a.get("names"));
                for (Map.Entry<MetricName, ? extends Metric> m : producers.get(name).metrics().entrySet())
                    if (m.getKey().group().equals(a.get("group")) && wanted.contains(m.getKey().name()))
                        out.put(m.getKey().name(), m.getValue().metricValue());
                return out;
            }
            case "consumer": {
                a.putIfAbsent("key.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
                a.putIfAbsent("value.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
                consumers.put(name, new KafkaConsumer<>(clientProps(a)));
                return name;
            }
            case "assign": consumers.get(name).assign(tps(a.get("tps"))); return name;
            case "subscribe": consumers.get(name).subscribe(list(a.get("topics"))); return name;
            case "seek": consumers.get(name).seek(tp(a.get("tp")), Long.parseLong(a.get("offset"))); return name;
            case "seek_to_beginning": consumers.get(name).seekToBeginning(tps(a.get("tps"))); return name;
            case "seek_to_end": consumers.get(name).seekToEnd(tps(a.get("tps"))); return name;
            case "position": return consumers.get(name).position(tp(a.get("tp")));
            case "pause": consumers.get(name).pause(tps(a.get("tps"))); return name;
            case "resume": consumers.get(name).resume(tps(a.get("tps"))); return name;
            case "poll": return poll(consumers.get(name), a);
            case "poll_group": return pollGroup(a);
            case "assignment": return assignment(consumers.get(name));
            case "commit_sync": return commitSync(consumers.get(name), a);
            case "commit_async": return commitAsync(consumers.get(name));
            case "committed": return committed(consumers.get(name), a);
            case "offsets_for_times": return offsetsForTimes(consumers.get(name), a);
            case "end_offsets": return offsetMap(consumers.get(name).endOffsets(tps(a.get("tps"))));
            case "beginning_offsets": return offsetMap(consumers.get(name).beginningOffsets(tps(a.get("tps"))));
            case "close_consumer": consumers.remove(name).close(Duration.ofSeconds(TIMEOUT_S)); return name;
            case "streams_start": return streamsStart(name, a);
            case "streams_stop": return streamsStop(name);
            default: return admin(verb, a);
        }
    }

    // ---- producer ---------------------------------------------------------------------------

    private Object send(KafkaProducer<String, String> producer, Map<String, String> a) throws Exception {
        int count = Integer.parseInt(a.getOrDefault("count", "1"));
        Integer partition = a.containsKey("partition") ? Integer.valueOf(a.get("partition")) : null;
        Long timestamp = a.containsKey("timestamp") ? Long.valueOf(a.get("timestamp")) : null;
        String value = a.containsKey("size") ? "v".repeat(Integer.parseInt(a.get("size"))) : a.get("value");
        List<Header> headers = new ArrayList<>();
        for (Map.Entry<String, String> h : configs(a.get("headers")).entrySet())
            headers.add(new RecordHeader(h.getKey(), h.getValue().getBytes(StandardCharsets.UTF_8)));
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            String v = value != null ? value : a.getOrDefault("prefix", "value-") + i;
            String k = a.containsKey("key") ? a.get("key") : "key-" + i;
            futures.add(producer.send(new ProducerRecord<>(a.get("topic"), partition, timestamp, k, v, headers)));
        }
        if (a.containsKey("no_flush")) return count;
        producer.flush();
        List<Object> out = new ArrayList<>();
        for (Future<RecordMetadata> f : futures) {
            RecordMetadata m = get(f);
            out.add(List.of(m.partition(), m.offset(), m.timestamp()));
        }
        return out;
    }

    // ---- consumer ---------------------------------------------------------------------------

    private static Map<String, Object> record(ConsumerRecord<String, String> r) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("topic", r.topic());
        out.put("partition", r.partition());
        out.put("offset", r.offset());
        out.put("timestamp", r.timestamp());
        out.put("key", r.key());
        String v = r.value();
        out.put("value", v == null || v.length() <= 200 ? v : v.substring(0, 200));
        out.put("value_len", v == null ? -1 : v.length());
        Map<String, String> headers = new LinkedHashMap<>();
        for (Header h : r.headers()) headers.put(h.key(), new String(h.value(), StandardCharsets.UTF_8));
        out.put("headers", headers);
        return out;
    }

    // Polls until `max` records arrived, or the one at `until_offset`, or `timeout_ms` passed (a
    // deadline, not a decision: the test asserts on what arrived).
    private static Object poll(KafkaConsumer<String, String> consumer, Map<String, String> a) {
        int max = Integer.parseInt(a.getOrDefault("max", "1"));
        long until = Long.parseLong(a.getOrDefault("until_offset", "-1"));
        long deadline = System.currentTimeMillis() + Long.parseLong(a.getOrDefault("timeout_ms", "20000"));
        List<Object> out = new ArrayList<>();
        boolean reached = false;
        do {
            ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
            for (ConsumerRecord<String, String> r : records) {
                out.add(record(r));
                reached |= r.offset() == until;
            }
        } while (!reached && out.size() < max && System.currentTimeMillis() < deadline);
        return out;
    }

    // Polls each named consumer in turn (they share this one thread) until together they hold
    // `partitions` partitions, each consumer at least one; answers each one's assignment.
    private Object pollGroup(Map<String, String> a) {
        List<String> names = list(a.get("names"));
        int partitions = Integer.parseInt(a.get("partitions"));
        long deadline = System.currentTimeMillis() + Long.parseLong(a.getOrDefault("timeout_ms", "60000"));
        Map<String, Object> out = new TreeMap<>();
        while (System.currentTimeMillis() < deadline) {
            int total = 0;
            boolean everyone = true;
            for (String n : names) {
                KafkaConsumer<String, String> c = consumers.get(n);
                c.poll(Duration.ofMillis(100));
                total += c.assignment().size();
                everyone &= !c.assignment().isEmpty();
            }
            if (everyone && total == partitions) break;
        }
        for (String n : names) out.put(n, assignment(consumers.get(n)));
        return out;
    }

    private static List<String> assignment(KafkaConsumer<String, String> consumer) {
        List<String> out = new ArrayList<>();
        for (TopicPartition tp : consumer.assignment()) out.add(key(tp));
        out.sort(null);
        return out;
    }

    private static Object commitSync(KafkaConsumer<String, String> consumer, Map<String, String> a) {
        if (a.containsKey("tp")) {
            consumer.commitSync(Map.of(tp(a.get("tp")), new OffsetAndMetadata(Long.parseLong(a.get("offset")),
                    a.getOrDefault("metadata", ""))));
        } else {
            consumer.commitSync();
        }
        return "committed";
    }

    // commitAsync, then polls until its callback ran: answers the callback's error or "committed".
    private static Object commitAsync(KafkaConsumer<String, String> consumer) throws Exception {
        CompletableFuture<String> done = new CompletableFuture<>();
        consumer.commitAsync((offsets, error) -> done.complete(error == null ? "committed" : error.toString()));
        long deadline = System.currentTimeMillis() + TIMEOUT_S * 1000;
        while (!done.isDone() && System.currentTimeMillis() < deadline) consumer.poll(Duration.ofMillis(50));
        return done.getNow("no callback");
    }

    private static Object committed(KafkaConsumer<String, String> consumer, Map<String, String> a) {
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : consumer.committed(Set.copyOf(tps(a.get("tps")))).entrySet())
            out.put(key(e.getKey()), e.getValue() == null ? null : List.of(e.getValue().offset(), e.getValue().metadata()));
        return out;
    }

    private static Object offsetsForTimes(KafkaConsumer<String, String> consumer, Map<String, String> a) {
        Map<TopicPartition, Long> query = new HashMap<>();
        for (TopicPartition tp : tps(a.get("tps"))) query.put(tp, Long.parseLong(a.get("ts")));
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<TopicPartition, OffsetAndTimestamp> e : consumer.offsetsForTimes(query).entrySet())
            out.put(key(e.getKey()), e.getValue() == null ? null : List.of(e.getValue().offset(), e.getValue().timestamp()));
        return out;
    }

    private static Object offsetMap(Map<TopicPartition, Long> offsets) {
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<TopicPartition, Long> e : offsets.entrySet()) out.put(key(e.getKey()), e.getValue());
        return out;
    }

    // ---- Kafka Streams ----------------------------------------------------------------------

    // Word count: splits each value into words, re-keys by word (a repartition topic) and counts
    // in a state store (its changelog topic), writing the counts to `output` as strings.
    private Object streamsStart(String name, Map<String, String> a) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(a.get("input"), Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(v -> Arrays.asList(v.toLowerCase().split("\\W+")))
                .filter((k, word) -> !word.isEmpty())
                .groupBy((k, word) -> word, Grouped.with("by-word", Serdes.String(), Serdes.String()))
                .count(Materialized.as("word-counts"))
                .toStream()
                .mapValues(String::valueOf)
                .to(a.get("output"), Produced.with(Serdes.String(), Serdes.String()));
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, a.get("app"));
        props.put(StreamsConfig.STATE_DIR_CONFIG, a.get("state_dir"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, a.getOrDefault("guarantee", "exactly_once_v2"));
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, a.getOrDefault("rf", "1"));
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "200");
        props.put("statestore.cache.max.bytes", "0");  // every count is sent: the test checks each one
        props.put("consumer.auto.offset.reset", "earliest");
        // Streams leaves no group on close: the restarted instance waits out the old member's session
        props.put("consumer.session.timeout.ms", "6000");
        props.put("consumer.heartbeat.interval.ms", "1000");
        KafkaStreams app = new KafkaStreams(builder.build(), props);
        CompletableFuture<KafkaStreams.State> running = new CompletableFuture<>();
        app.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING || now == KafkaStreams.State.ERROR) running.complete(now);
        });
        streams.put(name, app);
        app.start();
        try {
            return running.get(60, TimeUnit.SECONDS).toString();
        } catch (Exception e) {
            return app.state().toString();
        }
    }

    private Object streamsStop(String name) {
        KafkaStreams app = streams.remove(name);
        boolean closed = app.close(Duration.ofSeconds(TIMEOUT_S));
        return closed ? app.state().toString() : "close timed out";
    }

    // ---- Admin ------------------------------------------------------------------------------

    private static ConfigResource resource(Map<String, String> a) {
        ConfigResource.Type type = a.get("type").equals("broker") ? ConfigResource.Type.BROKER : ConfigResource.Type.TOPIC;
        return new ConfigResource(type, a.get("name"));
    }

    private Object admin(String verb, Map<String, String> a) throws Exception {
        switch (verb) {
            case "create_topic": {
                NewTopic topic = new NewTopic(a.get("name"), Integer.parseInt(a.getOrDefault("partitions", "1")),
                        Short.parseShort(a.getOrDefault("rf", "1"))).configs(configs(a.get("configs")));
                get(admin.createTopics(List.of(topic)).all());
                return a.get("name");
            }
            case "list_topics": return new TreeMap<>(get(admin.listTopics().namesToListings())).keySet();
            case "describe_topics": {  // page_limit=N: DescribeTopicPartitions' partitions per response
                DescribeTopicsOptions options = new DescribeTopicsOptions();
                if (a.containsKey("page_limit")) options.partitionSizeLimitPerResponse(Integer.parseInt(a.get("page_limit")));
                return describeTopics(list(a.get("names")), options);
            }
            case "delete_topics": get(admin.deleteTopics(list(a.get("names"))).all()); return "deleted";
            case "create_partitions":
                get(admin.createPartitions(Map.of(a.get("name"), NewPartitions.increaseTo(Integer.parseInt(a.get("count"))))).all());
                return "created";
            case "describe_configs": return describeConfigs(a);
            case "incremental_alter_configs": return incrementalAlterConfigs(a);
            case "delete_records": {
                Map<TopicPartition, RecordsToDelete> request = Map.of(tp(a.get("tp")), RecordsToDelete.beforeOffset(Long.parseLong(a.get("before"))));
                return get(admin.deleteRecords(request).lowWatermarks().get(tp(a.get("tp")))).lowWatermark();
            }
            case "list_offsets": return listOffsets(a);
            case "list_groups": return listGroups();
            case "describe_groups": return describeGroups(list(a.get("ids")));
            case "list_group_offsets": {
                Map<String, Object> out = new TreeMap<>();
                for (Map.Entry<TopicPartition, OffsetAndMetadata> e : get(admin.listConsumerGroupOffsets(a.get("id")).partitionsToOffsetAndMetadata()).entrySet())
                    out.put(key(e.getKey()), e.getValue() == null ? null : e.getValue().offset());
                return out;
            }
            case "alter_group_offsets":
                get(admin.alterConsumerGroupOffsets(a.get("id"), Map.of(tp(a.get("tp")), new OffsetAndMetadata(Long.parseLong(a.get("offset"))))).all());
                return "altered";
            case "delete_group_offsets":
                get(admin.deleteConsumerGroupOffsets(a.get("id"), Set.copyOf(tps(a.get("tps")))).all());
                return "deleted";
            case "remove_members": {
                RemoveMembersFromConsumerGroupOptions options = a.containsKey("instances")
                        ? new RemoveMembersFromConsumerGroupOptions(instances(list(a.get("instances"))))
                        : new RemoveMembersFromConsumerGroupOptions();
                get(admin.removeMembersFromConsumerGroup(a.get("id"), options).all());
                return "removed";
            }
            case "delete_groups": get(admin.deleteConsumerGroups(list(a.get("ids"))).all()); return "deleted";
            case "describe_cluster": return describeCluster();
            case "describe_log_dirs": return describeLogDirs(a);
            case "describe_replica_log_dirs": return describeReplicaLogDirs(a);
            case "alter_replica_log_dirs": {
                TopicPartitionReplica replica = new TopicPartitionReplica(tp(a.get("tp")).topic(), tp(a.get("tp")).partition(), Integer.parseInt(a.get("broker")));
                get(admin.alterReplicaLogDirs(Map.of(replica, a.get("dir"))).all());
                return "altered";
            }
            case "elect_leaders": {
                Map<String, Object> out = new TreeMap<>();
                for (Map.Entry<TopicPartition, Optional<Throwable>> e : get(admin.electLeaders(ElectionType.valueOf(a.getOrDefault("election", "PREFERRED")), Set.copyOf(tps(a.get("tps")))).partitions()).entrySet())
                    out.put(key(e.getKey()), e.getValue().map(t -> t.getClass().getSimpleName()).orElse(null));
                return out;
            }
            case "alter_reassignments": {
                List<Integer> replicas = new ArrayList<>();
                for (String r : list(a.get("replicas"))) replicas.add(Integer.valueOf(r));
                Optional<NewPartitionReassignment> target = replicas.isEmpty() ? Optional.empty() : Optional.of(new NewPartitionReassignment(replicas));
                get(admin.alterPartitionReassignments(Map.of(tp(a.get("tp")), target)).all());
                return "altered";
            }
            case "list_reassignments": {
                Map<String, Object> out = new TreeMap<>();
                for (Map.Entry<TopicPartition, PartitionReassignment> e : get(admin.listPartitionReassignments().reassignments()).entrySet())
                    out.put(key(e.getKey()), Map.of("replicas", e.getValue().replicas(), "adding", e.getValue().addingReplicas(), "removing", e.getValue().removingReplicas()));
                return out;
            }
            case "describe_features": return describeFeatures();
            case "update_features": {
                FeatureUpdate update = new FeatureUpdate(Short.parseShort(a.get("level")), FeatureUpdate.UpgradeType.UPGRADE);
                get(admin.updateFeatures(Map.of(a.get("feature"), update), new UpdateFeaturesOptions()).all());
                return "updated";
            }
            case "list_transactions": {
                List<Object> out = new ArrayList<>();
                for (TransactionListing t : get(admin.listTransactions().all()))
                    out.add(Map.of("id", t.transactionalId(), "producer_id", t.producerId(), "state", t.state().toString()));
                return out;
            }
            case "describe_transactions": return describeTransactions(list(a.get("ids")));
            case "fence_producers": get(admin.fenceProducers(list(a.get("ids"))).all()); return "fenced";
            case "abort_transaction": {
                // what kafka-transactions.sh abort sends for a hanging transaction: WriteTxnMarkers
                // straight to the partition's leader, with the producer's id and epoch
                AbortTransactionSpec spec = new AbortTransactionSpec(tp(a.get("tp")), Long.parseLong(a.get("producer_id")),
                        Short.parseShort(a.get("epoch")), Integer.parseInt(a.get("coordinator_epoch")));
                get(admin.abortTransaction(spec).all());
                return "aborted";
            }
            case "describe_producers": {
                List<Object> out = new ArrayList<>();
                for (ProducerState p : get(admin.describeProducers(tps(a.get("tps"))).partitionResult(tp(a.get("tps")))).activeProducers())
                    out.add(Map.of("producer_id", p.producerId(), "epoch", p.producerEpoch(), "last_sequence", p.lastSequence(),
                            "txn_start_offset", p.currentTransactionStartOffset().orElse(-1L),
                            "coordinator_epoch", p.coordinatorEpoch().orElse(-1)));
                return out;
            }
            case "alter_client_quotas": {
                // entity="user:alice;client-id:app" (<default> for the default), ops="key:value;key:" (empty: remove)
                List<ClientQuotaAlteration.Op> ops = new ArrayList<>();
                for (Map.Entry<String, String> op : configs(a.get("ops")).entrySet())
                    ops.add(new ClientQuotaAlteration.Op(op.getKey(), op.getValue().isEmpty() ? null : Double.valueOf(op.getValue())));
                get(admin.alterClientQuotas(List.of(new ClientQuotaAlteration(quotaEntity(a.get("entity")), ops)),
                        new AlterClientQuotasOptions().validateOnly(Boolean.parseBoolean(a.getOrDefault("validate_only", "false")))).all());
                return "altered";
            }
            case "describe_client_quotas": {
                // components="user:alice;client-id:<default>;user:*" (* any name), strict=true|false
                List<ClientQuotaFilterComponent> components = new ArrayList<>();
                for (Map.Entry<String, String> c : configs(a.get("components")).entrySet()) {
                    String value = c.getValue();
                    components.add(value.equals("*") ? ClientQuotaFilterComponent.ofEntityType(c.getKey())
                            : value.equals("<default>") ? ClientQuotaFilterComponent.ofDefaultEntity(c.getKey())
                            : ClientQuotaFilterComponent.ofEntity(c.getKey(), value));
                }
                ClientQuotaFilter filter = Boolean.parseBoolean(a.getOrDefault("strict", "false"))
                        ? ClientQuotaFilter.containsOnly(components) : ClientQuotaFilter.contains(components);
                Map<String, Object> out = new TreeMap<>();
                for (Map.Entry<ClientQuotaEntity, Map<String, Double>> e : get(admin.describeClientQuotas(filter).entities()).entrySet())
                    out.put(new TreeMap<>(e.getKey().entries()).toString(), new TreeMap<>(e.getValue()));
                return out;
            }
            default: throw new IllegalArgumentException("unknown command " + verb);
        }
    }

    private static ClientQuotaEntity quotaEntity(String value) {
        Map<String, String> entries = new HashMap<>();
        for (Map.Entry<String, String> e : configs(value).entrySet())
            entries.put(e.getKey(), e.getValue().equals("<default>") ? null : e.getValue());
        return new ClientQuotaEntity(entries);
    }

    private static List<MemberToRemove> instances(List<String> ids) {
        List<MemberToRemove> out = new ArrayList<>();
        for (String id : ids) out.add(new MemberToRemove(id));
        return out;
    }

    private Object describeTopics(List<String> names, DescribeTopicsOptions options) throws Exception {
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<String, TopicDescription> e : get(admin.describeTopics(names, options).allTopicNames()).entrySet()) {
            List<Object> partitions = new ArrayList<>();
            for (TopicPartitionInfo p : e.getValue().partitions()) {
                Map<String, Object> info = new LinkedHashMap<>();
                info.put("partition", p.partition());
                info.put("leader", p.leader() == null ? -1 : p.leader().id());
                info.put("replicas", ids(p.replicas()));
                info.put("isr", ids(p.isr()));
                partitions.add(info);
            }
            out.put(e.getKey(), Map.of("internal", e.getValue().isInternal(), "topic_id", e.getValue().topicId().toString(), "partitions", partitions));
        }
        return out;
    }

    private static List<Integer> ids(Collection<Node> nodes) {
        List<Integer> out = new ArrayList<>();
        for (Node n : nodes) out.add(n.id());
        return out;
    }

    private Object describeConfigs(Map<String, String> a) throws Exception {
        Config config = get(admin.describeConfigs(List.of(resource(a))).all()).get(resource(a));
        Map<String, Object> out = new TreeMap<>();
        for (ConfigEntry entry : config.entries())
            out.put(entry.name(), List.of(String.valueOf(entry.value()), entry.source().toString()));
        return out;
    }

    private Object incrementalAlterConfigs(Map<String, String> a) throws Exception {
        List<AlterConfigOp> ops = new ArrayList<>();
        for (Map.Entry<String, String> e : configs(a.get("set")).entrySet())
            ops.add(new AlterConfigOp(new ConfigEntry(e.getKey(), e.getValue()), AlterConfigOp.OpType.SET));
        for (String k : list(a.get("delete")))
            ops.add(new AlterConfigOp(new ConfigEntry(k, null), AlterConfigOp.OpType.DELETE));
        get(admin.incrementalAlterConfigs(Map.of(resource(a), ops)).all());
        return "altered";
    }

    private Object listOffsets(Map<String, String> a) throws Exception {
        String spec = a.get("spec");
        OffsetSpec offsetSpec = spec.equals("earliest") ? OffsetSpec.earliest()
                : spec.equals("latest") ? OffsetSpec.latest()
                : spec.equals("max_timestamp") ? OffsetSpec.maxTimestamp()
                : spec.equals("earliest_local") ? OffsetSpec.earliestLocal()
                : spec.equals("latest_tiered") ? OffsetSpec.latestTiered()
                // 4.2+ only (KIP-1023): by reflection, since the driver compiles against 4.0.x
                : spec.equals("earliest_pending_upload") ? (OffsetSpec) OffsetSpec.class.getMethod("earliestPendingUpload").invoke(null)
                : OffsetSpec.forTimestamp(Long.parseLong(spec));
        Map<String, Object> out = new TreeMap<>();
        Map<TopicPartition, OffsetSpec> query = new HashMap<>();
        for (TopicPartition tp : tps(a.get("tps"))) query.put(tp, offsetSpec);
        for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e : get(admin.listOffsets(query).all()).entrySet())
            out.put(key(e.getKey()), List.of(e.getValue().offset(), e.getValue().timestamp()));
        return out;
    }

    private Object listGroups() throws Exception {
        Map<String, Object> out = new TreeMap<>();
        for (ConsumerGroupListing g : get(admin.listConsumerGroups().all()))
            out.put(g.groupId(), g.groupState().map(Object::toString).orElse("?"));
        return out;
    }

    private Object describeGroups(List<String> ids) throws Exception {
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<String, ConsumerGroupDescription> e : get(admin.describeConsumerGroups(ids).all()).entrySet()) {
            ConsumerGroupDescription g = e.getValue();
            List<Object> members = new ArrayList<>();
            for (MemberDescription m : g.members()) {
                List<String> assigned = new ArrayList<>();
                for (TopicPartition tp : m.assignment().topicPartitions()) assigned.add(key(tp));
                assigned.sort(null);
                members.add(Map.of("client_id", m.clientId(), "instance_id", m.groupInstanceId().orElse(""), "assignment", assigned));
            }
            out.put(e.getKey(), Map.of("state", g.groupState().toString(), "assignor", g.partitionAssignor(),
                    "coordinator", g.coordinator() == null ? -1 : g.coordinator().id(), "type", g.type().toString(), "members", members));
        }
        return out;
    }

    private Object describeCluster() throws Exception {
        DescribeClusterResult result = admin.describeCluster();
        List<Integer> nodes = ids(get(result.nodes()));
        nodes.sort(null);
        Node controller = get(result.controller());
        return Map.of("cluster_id", get(result.clusterId()), "controller", controller == null ? -1 : controller.id(), "nodes", nodes);
    }

    private Object describeLogDirs(Map<String, String> a) throws Exception {
        List<Integer> brokers = new ArrayList<>();
        for (String b : list(a.get("brokers"))) brokers.add(Integer.valueOf(b));
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<Integer, Map<String, LogDirDescription>> broker : get(admin.describeLogDirs(brokers).allDescriptions()).entrySet()) {
            Map<String, Object> dirs = new TreeMap<>();
            for (Map.Entry<String, LogDirDescription> dir : broker.getValue().entrySet()) {
                Map<String, Object> replicas = new TreeMap<>();
                for (Map.Entry<TopicPartition, ReplicaInfo> r : dir.getValue().replicaInfos().entrySet())
                    replicas.put(key(r.getKey()), List.of(r.getValue().size(), r.getValue().offsetLag(), r.getValue().isFuture()));
                LogDirDescription d = dir.getValue();
                dirs.put(dir.getKey(), Map.of("error", d.error() == null ? "" : d.error().getClass().getSimpleName(), "replicas", replicas,
                        "total_bytes", d.totalBytes().orElse(-1L), "usable_bytes", d.usableBytes().orElse(-1L)));
            }
            out.put(String.valueOf(broker.getKey()), dirs);
        }
        return out;
    }

    private Object describeReplicaLogDirs(Map<String, String> a) throws Exception {
        TopicPartition tp = tp(a.get("tp"));
        TopicPartitionReplica replica = new TopicPartitionReplica(tp.topic(), tp.partition(), Integer.parseInt(a.get("broker")));
        var info = get(admin.describeReplicaLogDirs(List.of(replica)).all()).get(replica);
        return Map.of("current", String.valueOf(info.getCurrentReplicaLogDir()), "future", String.valueOf(info.getFutureReplicaLogDir()));
    }

    private Object describeFeatures() throws Exception {
        FeatureMetadata features = get(admin.describeFeatures().featureMetadata());
        Map<String, Object> finalized = new TreeMap<>();
        for (Map.Entry<String, FinalizedVersionRange> e : features.finalizedFeatures().entrySet())
            finalized.put(e.getKey(), List.of(e.getValue().minVersionLevel(), e.getValue().maxVersionLevel()));
        Map<String, Object> supported = new TreeMap<>();
        for (Map.Entry<String, SupportedVersionRange> e : features.supportedFeatures().entrySet())
            supported.put(e.getKey(), List.of(e.getValue().minVersion(), e.getValue().maxVersion()));
        return Map.of("finalized", finalized, "supported", supported, "epoch", features.finalizedFeaturesEpoch().orElse(-1L));
    }

    private Object describeTransactions(List<String> ids) throws Exception {
        Map<String, Object> out = new TreeMap<>();
        for (Map.Entry<String, TransactionDescription> e : get(admin.describeTransactions(ids).all()).entrySet()) {
            List<String> partitions = new ArrayList<>();
            for (TopicPartition tp : e.getValue().topicPartitions()) partitions.add(key(tp));
            partitions.sort(null);
            out.put(e.getKey(), Map.of("state", e.getValue().state().toString(), "producer_id", e.getValue().producerId(),
                    "epoch", e.getValue().producerEpoch(), "coordinator", e.getValue().coordinatorId(), "partitions", partitions));
        }
        return out;
    }

    private void closeAll() {
        for (KafkaStreams app : streams.values()) app.close(Duration.ofSeconds(5));
        for (KafkaProducer<String, String> p : producers.values()) p.close(Duration.ofSeconds(5));
        for (KafkaConsumer<String, String> c : consumers.values()) c.close(Duration.ofSeconds(5));
        admin.close(Duration.ofSeconds(5));
    }

    // ---- JSON out (no JSON library is among the client's dependencies in every version) ----

    private static final Pattern PLAIN = Pattern.compile("[\\x20-\\x7e&&[^\"\\\\]]*");

    static String json(Object value) {
        if (value == null) return "null";
        if (value instanceof String s) {
            if (PLAIN.matcher(s).matches()) return "\"" + s + "\"";
            StringBuilder b = new StringBuilder("\"");
            for (char c : s.toCharArray()) {
                if (c == '"' || c == '\\') b.append('\\').append(c);
                else if (c < 0x20 || c > 0x7e) b.append(String.format("\\u%04x", (int) c));
                else b.append(c);
            }
            return b.append('"').toString();
        }
        if (value instanceof Number || value instanceof Boolean) return value.toString();
        if (value instanceof Map<?, ?> map) {
            StringBuilder b = new StringBuilder("{");
            for (Map.Entry<?, ?> e : map.entrySet()) {
                if (b.length() > 1) b.append(',');
                b.append(json(String.valueOf(e.getKey()))).append(':').append(json(e.getValue()));
            }
            return b.append('}').toString();
        }
        if (value instanceof Collection<?> items) {
            StringBuilder b = new StringBuilder("[");
            for (Object item : items) {
                if (b.length() > 1) b.append(',');
                b.append(json(item));
            }
            return b.append(']').toString();
        }
        return json(value.toString());
    }
}
