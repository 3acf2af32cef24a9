// scripts/bench's partitions-1k-java producer (scripts/bench_partitions.py starts ten of these).
//
// `java -cp <jars>:<classes> PartitionsProducer <bootstrap> <topic> <partitions> <first> <n> <size>
//  [producer setting=value ...]`: makes a KafkaProducer, reads the topic's metadata until
// every partition has a leader, sends -Dwarmup.records to -Dwarmup.topic (when given) so that the
// send path is compiled before the timed window, prints "ready", waits for "go" on stdin, then sends records
// first .. first + n - 1 of the whole sequence, record g to partition g % partitions (the same
// placement as the librdkafka producers of partitions-1k), and flushes. Its last stdout line is the
// JSON result scripts/bench reads: the window (System.nanoTime, CLOCK_MONOTONIC as Python's
// time.monotonic_ns, so the windows of the ten processes compare), its CPU seconds over it, the p99
// of send-to-acknowledgement per record (timed in the send callback), the Produce requests it sent
// (the client's per-node request-total over the window) and the client's own request-latency
// figures. Nothing else goes to stdout: the client logs to stderr.
// Compiled with Driver against the oldest client the suite runs (4.0.x), so it uses no newer API.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class PartitionsProducer {
    private static final long READY_TIMEOUT_MS = 120_000;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        long first = Long.parseLong(args[3]);
        int n = Integer.parseInt(args[4]), size = Integer.parseInt(args[5]);
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        for (String setting : Arrays.copyOfRange(args, 6, args.length)) {
            String[] kv = setting.split("=", 2);
            props.put(kv[0], kv[1]);
        }
        byte[] payload = filler(size);
        try (KafkaProducer<byte[], byte[]> producer =
                 new KafkaProducer<>(props, new ByteArraySerializer(), new ByteArraySerializer())) {
            awaitLeaders(producer, topic, partitions);
            warmUp(producer, System.getProperty("warmup.topic"), Integer.getInteger("warmup.records", 0), payload);
            System.out.println("ready");
            System.out.flush();
            BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            String line = stdin.readLine();
            if (!"go".equals(line)) throw new IllegalStateException("expected \"go\" on stdin, got " + line);
            System.out.println(produce(producer, topic, partitions, first, n, payload));
        }
    }

    /** The same bytes the Python workers send and check: filler_payload of bench_client. */
    static byte[] filler(int size) {
        byte[] payload = new byte[size];
        Arrays.fill(payload, (byte) 'x');
        return payload;
    }

    /** The send path loaded and compiled before the timed window (a JVM runs it interpreted at
     * first): `records` records to partition 0 of a topic of their own, acknowledged. */
    static void warmUp(KafkaProducer<byte[], byte[]> producer, String topic, int records, byte[] payload)
            throws Exception {
        if (topic == null || records == 0) return;
        awaitLeaders(producer, topic, 1);
        for (int i = 0; i < records; i++) producer.send(new ProducerRecord<>(topic, 0, null, payload), (metadata, exception) -> { });
        producer.flush();
    }

    static void awaitLeaders(KafkaProducer<byte[], byte[]> producer, String topic, int partitions) throws InterruptedException {
        long deadline = System.currentTimeMillis() + READY_TIMEOUT_MS;
        while (true) {
            List<PartitionInfo> infos = producer.partitionsFor(topic);
            if (infos.size() == partitions && infos.stream().allMatch(info -> info.leader() != null)) return;
            if (System.currentTimeMillis() > deadline)
                throw new IllegalStateException(topic + ": not every one of " + partitions + " partitions has a leader");
            Thread.sleep(100);
        }
    }

    static String produce(KafkaProducer<byte[], byte[]> producer, String topic, int partitions, long first, int n,
                          byte[] payload) {
        long[] latencyNs = new long[n];
        AtomicInteger acknowledged = new AtomicInteger();
        AtomicInteger failures = new AtomicInteger();
        AtomicReference<String> firstFailure = new AtomicReference<>();
        double requestsBefore = produceRequests(producer);
        long cpu0 = cpuNs();
        long started = System.nanoTime();
        for (int i = 0; i < n; i++) {
            final int index = i;
            final long sent = System.nanoTime();
            int partition = (int) ((first + i) % partitions);
            producer.send(new ProducerRecord<>(topic, partition, null, payload), (metadata, exception) -> {
                latencyNs[index] = System.nanoTime() - sent;
                if (exception == null) {
                    acknowledged.incrementAndGet();
                } else if (failures.getAndIncrement() == 0) {
                    firstFailure.set(exception.toString());
                }
            });
        }
        producer.flush();
        long ended = System.nanoTime();
        long cpu = cpuNs() - cpu0;
        double requests = produceRequests(producer) - requestsBefore;
        if (failures.get() > 0)
            return error(failures.get() + " errors, first: " + firstFailure.get());
        if (acknowledged.get() != n)
            return error((n - acknowledged.get()) + " records unacknowledged after flush()");
        Arrays.sort(latencyNs);
        long p99 = latencyNs[Math.min(n - 1, (int) Math.ceil(n * 0.99) - 1)];
        return String.format(java.util.Locale.ROOT,
            "{\"started_ns\": %d, \"ended_ns\": %d, \"client_cpu_s\": %.6f, \"record_p99_ms\": %.3f, "
                + "\"produce_requests\": %.0f, \"rtt_avg_ms\": %s, \"rtt_max_ms\": %s, \"warnings\": []}",
            started, ended, cpu / 1e9, p99 / 1e6, requests,
            jsonNumber(metric(producer, "producer-metrics", "request-latency-avg")),
            jsonNumber(metric(producer, "producer-metrics", "request-latency-max")));
    }

    /** Requests sent to the brokers (not to the bootstrap address, node -1): during the window
     * they are Produce requests, bar a metadata refresh, which the client makes only on errors. */
    static double produceRequests(KafkaProducer<byte[], byte[]> producer) {
        double total = 0;
        for (Map.Entry<MetricName, ? extends Metric> entry : producer.metrics().entrySet()) {
            MetricName name = entry.getKey();
            String node = name.tags().get("node-id");
            if (name.group().equals("producer-node-metrics") && name.name().equals("request-total")
                    && node != null && !node.equals("node--1"))
                total += ((Number) entry.getValue().metricValue()).doubleValue();
        }
        return total;
    }

    static Double metric(KafkaProducer<byte[], byte[]> producer, String group, String name) {
        for (Map.Entry<MetricName, ? extends Metric> entry : producer.metrics().entrySet())
            if (entry.getKey().group().equals(group) && entry.getKey().name().equals(name)
                    && entry.getValue().metricValue() instanceof Number number)
                return number.doubleValue();
        return null;
    }

    static String jsonNumber(Double value) {
        return value == null || value.isNaN() || value.isInfinite() ? "null" : String.format(java.util.Locale.ROOT, "%.3f", value);
    }

    static String error(String message) {
        return "{\"error\": \"" + message.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"}";
    }

    static long cpuNs() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }
}
