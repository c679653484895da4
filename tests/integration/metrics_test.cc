// Metrics from real processes: a coordinator and two workers (which load LibTorch and
// OpenBLAS, where prometheus-cpp's civetweb exposer cannot start) serve /metrics; a real
// Prometheus server (Debian's) scrapes them while a job runs; and the numbers are the job's:
// steps, jobs by state, workers by health, bytes both ways (growing while it runs), and a
// compression ratio equal to the configured one.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config/job_config.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/http_get.h"
#include "tests/testing/process_cluster.h"
#include "tests/testing/wait_for.h"

namespace resbm::testing {
namespace {

// The port a process printed as "metrics on port N" (0 if it did not).
int MetricsPort(const std::string& log) {
  std::smatch match;
  if (!std::regex_search(log, match, std::regex("metrics on port ([0-9]+)"))) return 0;
  return std::stoi(match[1]);
}

// The port Prometheus took for --web.listen-address=127.0.0.1:0, from its log line
// `msg="Listening on" address=127.0.0.1:N` (0 until it has logged it). Port 0 and the log,
// not a port bound, released and handed over: another process could take that in between.
int PrometheusPort(const std::string& log) {
  std::smatch match;
  if (!std::regex_search(log, match,
                         std::regex("\"Listening on\" address=127\\.0\\.0\\.1:([0-9]+)"))) {
    return 0;
  }
  return std::stoi(match[1]);
}

// The values of an instant-vector query through Prometheus's HTTP API, sorted.
std::vector<double> QueryVector(int port, const std::string& promql) {
  std::string encoded;
  for (unsigned char c : promql) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-') {
      encoded += static_cast<char>(c);
    } else {
      encoded += absl::StrFormat("%%%02X", c);
    }
  }
  auto [code, body] = HttpGet(port, "/api/v1/query?query=" + encoded);
  std::vector<double> values;
  if (code != 200) return values;
  const auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded() || json.value("status", "") != "success") return values;
  for (const auto& sample : json["data"]["result"]) {
    values.push_back(std::stod(sample["value"][1].get<std::string>()));
  }
  std::sort(values.begin(), values.end());
  return values;
}

TEST(MetricsTest, EveryServiceExposesTheJobsNumbersAndPrometheusScrapesThem) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_metrics_" + std::to_string(::getpid()));
  ASSERT_TRUE(cluster.StartCoordinator({"--metrics-listen=127.0.0.1:0"}).ok()) << cluster.Logs();
  cluster.set_worker_flags({"--metrics-listen=127.0.0.1:0"});
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(cluster.StartWorker().ok());
  int worker_ports[2] = {0, 0};
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < 2; ++i) worker_ports[i] = MetricsPort(cluster.worker(i).Log());
        return worker_ports[0] != 0 && worker_ports[1] != 0;
      },
      absl::Seconds(30)))
      << cluster.Logs();
  const int coordinator_port = MetricsPort(cluster.coordinator().Log());
  ASSERT_NE(coordinator_port, 0) << cluster.Logs();

  auto config = ParseJobConfigJson(R"({"model": {"d_model": 64, "n_layers": 4, "n_heads": 2,
      "mlp_hidden": 128, "seq_len": 32},
    "stages": {"num_stages": 2}, "compression": {"ratio": 8, "wire_dtype": "WIRE_DTYPE_BF16"},
    "training": {"steps": 200, "batch_size": 8, "microbatches": 2, "eval_every": 10,
                 "eval_batches": 1, "checkpoint_every": 10}})");
  ASSERT_TRUE(config.ok()) << config.status();
  // A real Prometheus server scraping all three every second.
  std::ofstream(cluster.dir() + "/prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n  - job_name: resbm\n    static_configs:\n      - targets: ["
      << "'127.0.0.1:" << coordinator_port << "', '127.0.0.1:" << worker_ports[0]
      << "', '127.0.0.1:" << worker_ports[1] << "']\n";
  auto prometheus = ChildProcess::Start(
      {"/usr/bin/prometheus", "--config.file=" + cluster.dir() + "/prometheus.yml",
       "--storage.tsdb.path=" + cluster.dir() + "/tsdb", "--web.listen-address=127.0.0.1:0"},
      cluster.dir() + "/prometheus.log");
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  int prometheus_port = 0;
  ASSERT_TRUE(WaitFor([&] { return (prometheus_port = PrometheusPort((*prometheus)->Log())) != 0; },
                      absl::Seconds(60)))
      << (*prometheus)->Log();
  auto query = [&](const std::string& promql) { return QueryVector(prometheus_port, promql); };
  ASSERT_TRUE(WaitFor([&] { return query("up == 1").size() == 3; }, absl::Seconds(60)))
      << (*prometheus)->Log();

  auto job = cluster.client().Submit(*config);
  ASSERT_TRUE(job.ok()) << job.status();
  // Mid-job, what Prometheus has seen of the traffic (it must grow by the end) and the
  // job's own series.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto bytes = query("sum(resbm_transport_bytes_total)");
        auto train = query("resbm_train_loss{job_id=\"job-1\"}");
        auto val = query("resbm_val_loss{job_id=\"job-1\"}");
        return !bytes.empty() && bytes[0] > 0 && !train.empty() && train[0] > 0 && !val.empty() &&
               val[0] > 0;
      },
      absl::Seconds(60)))
      << (*prometheus)->Log();
  const double bytes_mid = query("sum(resbm_transport_bytes_total)")[0];
  auto ended = cluster.client().WaitForEnd(job->job_id(), absl::Seconds(120));
  ASSERT_TRUE(ended.ok()) << ended.status();
  ASSERT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->message();

  auto [code, coordinator] = HttpGet(coordinator_port, "/metrics");
  ASSERT_EQ(code, 200) << coordinator;
  EXPECT_EQ(SampleValue(coordinator, "resbm_steps_total"), 200) << coordinator;
  EXPECT_EQ(SampleValue(coordinator, "resbm_jobs{state=\"succeeded\"}"), 1) << coordinator;
  EXPECT_EQ(SampleValue(coordinator, "resbm_jobs{state=\"running\"}"), 0) << coordinator;
  EXPECT_EQ(SampleValue(coordinator, "resbm_workers{health=\"healthy\"}"), 2) << coordinator;
  EXPECT_EQ(SampleValue(coordinator, "resbm_step_seconds_count"), 200) << coordinator;
  // Checkpoints after steps 0, 10, ..., 190, and the final one after step 200.
  EXPECT_EQ(SampleValue(coordinator, "resbm_checkpoint_seconds_count"), 21) << coordinator;
  EXPECT_GT(SampleValue(coordinator, "resbm_checkpoint_bytes_total"), 0) << coordinator;
  // A job's series go when it ends: the job_id label is bounded by the running jobs.
  EXPECT_EQ(coordinator.find("job_id=\"job-1\""), std::string::npos) << coordinator;

  // The worker that ran stage 0 sent activations to stage 1 and got gradients back.
  std::string first, last;
  for (int port : worker_ports) {
    auto [worker_code, text] = HttpGet(port, "/metrics");
    ASSERT_EQ(worker_code, 200) << text;
    (text.find("peer_stage=\"1\"") != std::string::npos ? first : last) = text;
  }
  ASSERT_FALSE(first.empty());
  ASSERT_FALSE(last.empty());
  // bf16 wire: payload per token is k = d / 8 values of 2 bytes, the bf16 reference d x 2.
  EXPECT_EQ(SampleValue(first, "resbm_transport_compression_ratio{peer_stage=\"1\"}"), 8) << first;
  EXPECT_EQ(SampleValue(last, "resbm_transport_compression_ratio{peer_stage=\"0\"}"), 8) << last;
  // 200 steps x 8 x 32 tokens x k = 8 values x 2 bytes, each way (evaluation adds forward).
  const double train_payload = 200.0 * 8 * 32 * 8 * 2;
  EXPECT_EQ(SampleValue(first,
                        "resbm_transport_payload_bytes_total{direction=\"received\",kind="
                        "\"gradient\",peer_stage=\"1\"}"),
            train_payload)
      << first;
  EXPECT_GT(SampleValue(first, "resbm_transport_bytes_total{direction=\"sent\",peer_stage=\"1\"}"),
            train_payload);
  EXPECT_GT(SampleValue(first, "resbm_stage_compute_seconds_count{op=\"forward\"}"), 0);
  EXPECT_EQ(SampleValue(first, "resbm_stage_steps_total{mode=\"train\",outcome=\"ok\"}"), 200);
  EXPECT_GT(SampleValue(last, "resbm_stage_wait_seconds_total{waiting_for=\"activation\"}"), 0);
  EXPECT_GT(SampleValue(first, "resbm_device_memory_bytes{device=\"cpu\"}"), 1e6);
  // The job ended: both workers released their stage.
  EXPECT_EQ(first.find("resbm_stage_info{"), std::string::npos) << first;
  EXPECT_EQ(last.find("resbm_stage_info{"), std::string::npos) << last;

  // What Prometheus scraped: every service up, the final counts, the configured ratio.
  EXPECT_TRUE(WaitFor([&] { return query("resbm_steps_total") == std::vector<double>{200}; },
                      absl::Seconds(15)))
      << (*prometheus)->Log();
  EXPECT_EQ(query("up == 1").size(), 3u);
  EXPECT_GT(query("sum(resbm_transport_bytes_total)").at(0), bytes_mid);
  EXPECT_EQ(query("resbm_transport_compression_ratio"), (std::vector<double>{8, 8}));
  EXPECT_EQ(query("resbm_jobs{state=\"succeeded\"}"), std::vector<double>{1});
  (*prometheus)->Stop(absl::Seconds(10));

  EXPECT_EQ(HttpGet(coordinator_port, "/nope").first, 404);
  EXPECT_EQ(HttpGet(coordinator_port, "/healthz").first, 200);
}

}  // namespace
}  // namespace resbm::testing
