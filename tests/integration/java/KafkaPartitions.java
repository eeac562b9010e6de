// A consumer in Java's convention: the partition Kafka's default partitioner gives each key.
// Reads hex keys (one a line) on stdin, prints "<partition>" per key for the partition count
// in args[0]. Run with kafka-clients and slf4j-api on the class path (single-file source).
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.HexFormat;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;

public class KafkaPartitions {
    public static void main(String[] args) throws Exception {
        int partitions = Integer.parseInt(args[0]);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) continue;
            byte[] key = HexFormat.of().parseHex(line.trim());
            System.out.println(BuiltInPartitioner.partitionForKey(key, partitions));
        }
    }
}
