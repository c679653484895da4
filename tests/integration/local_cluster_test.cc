// The spine with real processes: `resbmctl local` (a coordinator and one resbm-worker process
// per stage, talking gRPC over loopback) trains step by step to the same losses as the
// single-process `resbm-train` with the same config, for 2 and 4 stages, GPipe and 1F1B,
// `none` and `resbm` (fp32 wire); its summary reports the measured wire bytes; and the model
// the cluster exports through the job API holds the same tensors as resbm-train's export.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/modelio/safetensors_file.h"
#include "common/runtime/child_process.h"
#include "gtest/gtest.h"
#include "tests/testing/binaries.h"

namespace resbm {
namespace {

using ::resbm::testing::BinaryPath;

struct Case {
  int stages;
  const char* kind;
  const char* schedule;
};

std::string WriteConfig(const Case& c, const std::string& path) {
  std::ofstream out(path);
  out << R"({"model": {"d_model": 64, "n_layers": 4, "n_heads": 2, "mlp_hidden": 128,
               "seq_len": 32},
    "stages": {"num_stages": )"
      << c.stages << R"(},
    "compression": {"kind": ")"
      << c.kind << R"(", "ratio": )" << (std::string(c.kind) == "COMPRESSION_KIND_NONE" ? 1 : 8)
      << R"(, "wire_dtype": "WIRE_DTYPE_FP32", "init_std": 0.02},
    "training": {"steps": 6, "batch_size": 8, "microbatches": 4, "eval_every": 3,
                 "eval_batches": 1, "seed": 11, "schedule": ")"
      << c.schedule << R"("}})";
  return path;
}

// (train_loss, val_loss or NaN) per CSV row.
std::vector<std::pair<double, double>> ReadLosses(const std::string& csv) {
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::pair<double, double>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream stream(line);
    std::string cell;
    while (std::getline(stream, cell, ',')) cells.push_back(cell);
    rows.emplace_back(std::stod(cells.at(2)), cells.at(3).empty() ? NAN : std::stod(cells[3]));
  }
  return rows;
}

int RunToEnd(const std::vector<std::string>& argv, const std::string& log) {
  auto process = ChildProcess::Start(argv, log);
  EXPECT_TRUE(process.ok()) << process.status();
  auto status = (*process)->Wait(absl::Seconds(240));
  EXPECT_TRUE(status.has_value()) << (*process)->Log();
  EXPECT_EQ(DescribeWaitStatus(status.value_or(-1)), "exit 0") << (*process)->Log();
  return status.value_or(-1);
}

// Relative Frobenius distance of two F32 tensors of the same shape.
double RelativeDistance(const RawTensor& a, const RawTensor& b) {
  const auto* x = reinterpret_cast<const float*>(a.data.data());
  const auto* y = reinterpret_cast<const float*>(b.data.data());
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    diff += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    norm += static_cast<double>(y[i]) * y[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// Both exports hold the same tensors, in the same order, within 1e-6 relative each.
void ExpectSameExports(const std::string& cluster_dir, const std::string& single_dir) {
  auto cluster = SafetensorsFile::Open(cluster_dir + "/model.safetensors");
  auto single = SafetensorsFile::Open(single_dir + "/model.safetensors");
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE(single.ok()) << single.status();
  ASSERT_EQ(cluster->entries().size(), single->entries().size());
  for (size_t i = 0; i < single->entries().size(); ++i) {
    const std::string& name = single->entries()[i].name;
    EXPECT_EQ(cluster->entries()[i].name, name);
    auto a = cluster->Read(name);
    auto b = single->Read(name);
    ASSERT_TRUE(a.ok() && b.ok()) << name;
    ASSERT_EQ(a->shape, b->shape) << name;
    EXPECT_LE(RelativeDistance(*a, *b), 1e-6) << name;
  }
  EXPECT_EQ(cluster->metadata().at("resbm.step"), "6");
}

class LocalClusterTest : public ::testing::TestWithParam<Case> {};

TEST_P(LocalClusterTest, WorkerProcessesMatchTheSingleProcessTrainer) {
  const Case c = GetParam();
  const std::string dir = ::testing::TempDir() + "/resbm_local_cluster_" +
                          std::to_string(::getpid()) + "_" + std::to_string(c.stages) + c.kind +
                          c.schedule;
  std::filesystem::create_directories(dir);
  const std::string config = WriteConfig(c, dir + "/job.json");

  RunToEnd({BinaryPath("resbm-train"), "--config=" + config, "--threads=1",
            "--summary-json=" + dir + "/single.json", "--loss-csv=" + dir + "/single.csv",
            "--checkpoint-dir=" + dir + "/single-checkpoint"},
           dir + "/single.log");
  RunToEnd({BinaryPath("resbmctl"), "local", "--config=" + config, "--threads-per-worker=1",
            "--log-dir=" + dir + "/logs", "--summary-json=" + dir + "/cluster.json",
            "--loss-csv=" + dir + "/cluster.csv", "--export-dir=" + dir + "/cluster-model"},
           dir + "/cluster.log");
  RunToEnd({BinaryPath("resbmctl"), "export", "--checkpoint=" + dir + "/single-checkpoint",
            "--out=" + dir + "/single-model"},
           dir + "/export.log");
  ExpectSameExports(dir + "/cluster-model", dir + "/single-model");

  const auto single = ReadLosses(dir + "/single.csv");
  const auto cluster = ReadLosses(dir + "/cluster.csv");
  ASSERT_EQ(single.size(), 6u);
  ASSERT_EQ(cluster.size(), single.size());
  for (size_t i = 0; i < single.size(); ++i) {
    EXPECT_LT(std::abs(cluster[i].first - single[i].first), 1e-5 * single[i].first)
        << "step " << i + 1 << ": " << cluster[i].first << " vs " << single[i].first;
    if (!std::isnan(single[i].second)) {
      EXPECT_LT(std::abs(cluster[i].second - single[i].second), 1e-5 * single[i].second)
          << "val at step " << i + 1;
    }
  }
  // Measured bytes: k x tokens x 4 per boundary and direction (fp32), as the trainer predicts.
  std::ifstream summary_file(dir + "/cluster.json");
  const auto summary = nlohmann::json::parse(summary_file);
  const int64_t k = std::string(c.kind) == "COMPRESSION_KIND_NONE" ? 64 : 8;
  const int64_t tokens = 6 * 8 * 32;
  ASSERT_EQ(summary["boundaries"].size(), static_cast<size_t>(c.stages - 1));
  for (const auto& boundary : summary["boundaries"]) {
    EXPECT_EQ(boundary["forward_bytes"].get<int64_t>(), tokens * k * 4);
    EXPECT_EQ(boundary["backward_bytes"].get<int64_t>(), tokens * k * 4);
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    StagesKindsSchedules, LocalClusterTest,
    ::testing::Values(Case{2, "COMPRESSION_KIND_RESBM", "PIPELINE_SCHEDULE_GPIPE"},
                      Case{2, "COMPRESSION_KIND_NONE", "PIPELINE_SCHEDULE_1F1B"},
                      Case{4, "COMPRESSION_KIND_NONE", "PIPELINE_SCHEDULE_GPIPE"},
                      Case{4, "COMPRESSION_KIND_RESBM", "PIPELINE_SCHEDULE_1F1B"}));

}  // namespace
}  // namespace resbm
