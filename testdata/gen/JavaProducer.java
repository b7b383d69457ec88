// Executes a producer script (see recordset.py for the format) with the Apache Kafka Java client.
//
// Run with Java's single-file source launcher, no build step:
//   java -Dlog4j2.configurationFile=harness/log4j2-tools.yaml -cp "$(python3 harness/kafka_harness.py classpath)" \
//        testdata/gen/JavaProducer.java --bootstrap 127.0.0.1:PORT --topic T --script testdata/gen/scripts/standard.txt \
//        --t0 1700000000000 [--prop compression.type=lz4 ...] [--txn-prefix ferry]
//
// Producers are created lazily by name: P, P2 ... are plain producers (client defaults, so
// idempotent), T1, T2 ... are transactional (transactional.id = <txn-prefix>-<name>).
// Every record goes to partition 0. Prints one JSON line per acknowledged record to stdout:
//   {"producer":"P","offset":0,"timestamp":...}
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;

public class JavaProducer {
    static String bootstrap, topic, script, txnPrefix = "ferry";
    static long t0 = System.currentTimeMillis();
    static final Map<String, String> props = new LinkedHashMap<>();
    static final Map<String, KafkaProducer<byte[], byte[]>> producers = new HashMap<>();
    static final Map<String, List<Future<RecordMetadata>>> pending = new HashMap<>();
    static final Map<String, List<String>> pendingNames = new HashMap<>();

    public static void main(String[] args) throws Exception {
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--bootstrap": bootstrap = args[++i]; break;
                case "--topic": topic = args[++i]; break;
                case "--script": script = args[++i]; break;
                case "--t0": t0 = Long.parseLong(args[++i]); break;
                case "--txn-prefix": txnPrefix = args[++i]; break;
                case "--prop": {
                    String kv = args[++i];
                    int eq = kv.indexOf('=');
                    props.put(kv.substring(0, eq), kv.substring(eq + 1));
                    break;
                }
                default: throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (bootstrap == null || topic == null || script == null) {
            throw new IllegalArgumentException("--bootstrap, --topic and --script are required");
        }
        int lineNo = 0;
        for (String raw : Files.readAllLines(Path.of(script), StandardCharsets.UTF_8)) {
            lineNo++;
            String line = raw.strip();
            if (line.isEmpty() || line.startsWith("#")) continue;
            String[] t = line.split(" ");
            switch (t[0]) {
                case "send": {
                    Long ts = t[2].equals("*") ? null : t0 + Long.parseLong(t[2]);
                    List<Header> headers = new ArrayList<>();
                    for (int i = 5; i < t.length; i++) headers.add(header(t[i]));
                    ProducerRecord<byte[], byte[]> rec =
                        new ProducerRecord<>(topic, 0, ts, blob(t[3]), blob(t[4]), headers);
                    pending.computeIfAbsent(t[1], k -> new ArrayList<>()).add(producer(t[1]).send(rec));
                    pendingNames.computeIfAbsent(t[1], k -> new ArrayList<>()).add(t[1]);
                    break;
                }
                case "flush": producer(t[1]).flush(); drain(t[1]); break;
                case "sleep": Thread.sleep(Long.parseLong(t[1])); break;
                case "begin": producer(t[1]).beginTransaction(); break;
                case "commit": producer(t[1]).commitTransaction(); drain(t[1]); break;
                case "abort": producer(t[1]).abortTransaction(); drain(t[1]); break;
                case "close": producer(t[1]).close(); producers.remove(t[1]); break;
                case "mark": System.out.println("{\"mark\":\"" + t[1] + "\"}"); System.out.flush(); break;
                default: throw new IllegalArgumentException(script + ":" + lineNo + ": unknown command " + t[0]);
            }
        }
        for (String name : new ArrayList<>(producers.keySet())) {
            producers.get(name).flush();
            drain(name);
            producers.get(name).close();
        }
    }

    static KafkaProducer<byte[], byte[]> producer(String name) {
        return producers.computeIfAbsent(name, n -> {
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ProducerConfig.CLIENT_ID_CONFIG, "ferry-testdata-" + n);
            p.putAll(props);
            boolean txn = n.startsWith("T");
            if (txn) p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnPrefix + "-" + n);
            KafkaProducer<byte[], byte[]> kp =
                new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
            if (txn) kp.initTransactions();
            return kp;
        });
    }

    static void drain(String name) throws Exception {
        List<Future<RecordMetadata>> fs = pending.getOrDefault(name, List.of());
        for (Future<RecordMetadata> f : fs) {
            RecordMetadata md = f.get();
            System.out.println("{\"producer\":\"" + name + "\",\"offset\":" + md.offset()
                + ",\"timestamp\":" + md.timestamp() + "}");
        }
        fs.clear();
        System.out.flush();
    }

    // --- token decoding, mirrors recordset.py ---
    static byte[] blob(String tok) {
        if (tok.equals("-")) return null;
        char kind = tok.charAt(0);
        if (kind == 'x') return hex(tok.substring(1));
        int n = Integer.parseInt(tok.substring(1));
        byte[] out = new byte[n];
        if (kind == 'P') {
            int pos = 0;
            for (int i = 0; pos < n; i++) {
                byte[] line = String.format("ferry-large-value-%08d\n", i).getBytes(StandardCharsets.US_ASCII);
                int c = Math.min(line.length, n - pos);
                System.arraycopy(line, 0, out, pos, c);
                pos += c;
            }
            return out;
        }
        if (kind == 'Q') {
            int s = 0x9E3779B9;
            for (int i = 0; i < n; i++) {
                s ^= s << 13;
                s ^= s >>> 17;
                s ^= s << 5;
                out[i] = (byte) s;
            }
            return out;
        }
        throw new IllegalArgumentException("bad blob token " + tok);
    }

    static Header header(String tok) {
        int colon = tok.indexOf(':');
        String name = new String(hex(tok.substring(1, colon)), StandardCharsets.UTF_8);
        return new RecordHeader(name, blob(tok.substring(colon + 1)));
    }

    static byte[] hex(String h) {
        byte[] b = new byte[h.length() / 2];
        for (int i = 0; i < b.length; i++) b[i] = (byte) Integer.parseInt(h.substring(2 * i, 2 * i + 2), 16);
        return b;
    }
}
