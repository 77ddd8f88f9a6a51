import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.CountDownLatch;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;

/**
 * A real single-node YARN (one ResourceManager, one NodeManager) for the HDInsight tests.
 *
 * <p>Usage: {@code MiniYarn CONF_DIR MEMORY_MB VCORES}. The working directory holds YARN's
 * local and log folders. Once the NodeManager has registered, the cluster's effective
 * configuration (with the ports it bound) is written to CONF_DIR/yarn-site.xml, then
 * CONF_DIR/READY (key=value lines: the ResourceManager's addresses, the NodeManager's log and
 * local folders). spark-submit and Livy use CONF_DIR as HADOOP_CONF_DIR; its core-site.xml is
 * the caller's. SIGTERM stops the cluster, whose NodeManager kills its containers.
 */
public final class MiniYarn {
  private MiniYarn() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: MiniYarn CONF_DIR MEMORY_MB VCORES");
      System.exit(2);
    }
    Path confDir = Paths.get(args[0]).toAbsolutePath();
    int memoryMb = Integer.parseInt(args[1]);
    int vcores = Integer.parseInt(args[2]);

    YarnConfiguration conf = new YarnConfiguration();
    // Every server binds the loopback address only (the advertised names say "localhost").
    conf.set(YarnConfiguration.RM_BIND_HOST, "127.0.0.1");
    conf.set(YarnConfiguration.NM_BIND_HOST, "127.0.0.1");
    conf.set(YarnConfiguration.TIMELINE_SERVICE_BIND_HOST, "127.0.0.1");
    // No HDFS: staging and localization use the local file system, which one node shares.
    conf.set("fs.defaultFS", "file:///");
    conf.setInt(YarnConfiguration.NM_PMEM_MB, memoryMb);
    conf.setInt(YarnConfiguration.NM_VCORES, vcores);
    conf.setInt(YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB, 128);
    conf.setInt(YarnConfiguration.RM_SCHEDULER_MAXIMUM_ALLOCATION_MB, memoryMb);
    // One queue, as a fresh HDInsight cluster has ("default", Capacity Scheduler). Spark's
    // driver is the application master in cluster mode, so AMs may take half the node.
    conf.set("yarn.scheduler.capacity.root.queues", "default");
    conf.set("yarn.scheduler.capacity.root.default.capacity", "100");
    conf.set("yarn.scheduler.capacity.root.default.maximum-capacity", "100");
    conf.set("yarn.scheduler.capacity.maximum-am-resource-percent", "0.5");
    // The JVMs' virtual size says nothing about real use; a loaded test machine must not
    // have its containers killed for it.
    conf.setBoolean(YarnConfiguration.NM_PMEM_CHECK_ENABLED, false);
    conf.setBoolean(YarnConfiguration.NM_VMEM_CHECK_ENABLED, false);
    // A nearly full disk on a developer machine must not mark the only node unhealthy.
    conf.setFloat(YarnConfiguration.NM_MAX_PER_DISK_UTILIZATION_PERCENTAGE, 100.0f);
    // Container logs stay in the NodeManager's log folder (for three hours, YARN's default),
    // where tests read them; nothing aggregates them elsewhere.
    conf.setBoolean(YarnConfiguration.LOG_AGGREGATION_ENABLED, false);

    MiniYARNCluster cluster = new MiniYARNCluster("sparkjobs-hdi", 1, 1, 1);
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      cluster.stop();
      stopped.countDown();
    }));
    try {
      cluster.init(conf);
      cluster.start();
      if (!cluster.waitForNodeManagersToConnect(60_000)) {
        throw new IllegalStateException("the NodeManager did not register within 60 s");
      }
    } catch (Throwable e) {
      // YARN's threads would keep a half-started JVM alive; the caller waits for READY or exit.
      System.err.println("MiniYarn: YARN did not start: " + e);
      e.printStackTrace();
      System.exit(1);
    }
    Configuration effective = cluster.getConfig();
    Configuration node = cluster.getNodeManager(0).getConfig();
    Files.createDirectories(confDir);
    write(effective, confDir.resolve("yarn-site.xml"));
    String ready = "rm.address=" + effective.get(YarnConfiguration.RM_ADDRESS) + "\n"
        + "rm.webapp.address=" + effective.get(YarnConfiguration.RM_WEBAPP_ADDRESS) + "\n"
        + "nm.log-dirs=" + node.get(YarnConfiguration.NM_LOG_DIRS) + "\n"
        + "nm.local-dirs=" + node.get(YarnConfiguration.NM_LOCAL_DIRS) + "\n";
    Path tmp = confDir.resolve("READY.tmp");
    Files.write(tmp, ready.getBytes(StandardCharsets.UTF_8));
    Files.move(tmp, confDir.resolve("READY"), StandardCopyOption.ATOMIC_MOVE);
    System.out.println("MiniYarn: ready, ResourceManager at " + effective.get(YarnConfiguration.RM_ADDRESS));
    System.out.flush();
    stopped.await();
  }

  /** Write to a temporary file and rename it, so a reader never sees half a file. */
  private static void write(Configuration conf, Path target) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    conf.writeXml(bytes);
    Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
    Files.write(tmp, bytes.toByteArray());
    Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }
}
