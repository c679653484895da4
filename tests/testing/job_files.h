// Helpers of the job-level integration tests: the small two-stage job they run, the loss
// column of a loss CSV, and a reference run of a config with the single-process trainer
// (resbm-train). Header-only.
#ifndef RESBM_TESTS_TESTING_JOB_FILES_H_
#define RESBM_TESTS_TESTING_JOB_FILES_H_

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/runtime/child_process.h"
#include "gtest/gtest.h"
#include "tests/testing/binaries.h"

namespace resbm::testing {

// The job the recovery tests run: d 64, 4 layers on 2 stages (2 per stage with more stages),
// ResBM 8x on an fp32 wire, 8 x 32 tokens a step in 2 microbatches (a few milliseconds a step
// on one thread).
inline std::string TwoStageJobJson(const std::string& name, int steps, int eval_every, int seed,
                                   int checkpoint_every = 10, int replicas = 1, int stages = 2) {
  std::ostringstream json;
  json << R"({"name": ")" << name << R"(",
    "model": {"d_model": 64, "n_layers": )"
       << 2 * stages << R"(, "n_heads": 2, "mlp_hidden": 128, "seq_len": 32},
    "stages": {"num_stages": )"
       << stages << R"(, "replicas": )" << replicas << R"(},
    "compression": {"ratio": 8, "wire_dtype": "WIRE_DTYPE_FP32"},
    "training": {"steps": )"
       << steps << R"(, "batch_size": 8, "microbatches": )" << std::max(2, replicas)
       << R"(, "eval_every": )" << eval_every << R"(, "eval_batches": 1, "seed": )" << seed
       << R"(, "checkpoint_every": )" << checkpoint_every << "}}";
  return json.str();
}

// The train_loss column of a "step,tokens,train_loss,..." CSV.
inline std::vector<double> TrainLosses(const std::string& csv) {
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  std::vector<double> losses;
  while (std::getline(in, line)) {
    std::stringstream row(line);
    std::string cell;
    for (int i = 0; i < 3; ++i) std::getline(row, cell, ',');
    losses.push_back(std::stod(cell));
  }
  return losses;
}

// Trains `config` uninterrupted in one process; returns its per-step train losses.
inline std::vector<double> ReferenceLosses(const std::string& config, const std::string& dir) {
  auto reference = ChildProcess::Start(
      {BinaryPath("resbm-train"), "--config=" + config, "--threads=1",
       "--summary-json=" + dir + "/reference.json", "--loss-csv=" + dir + "/reference.csv",
       "--checkpoint-dir=" + dir + "/reference-checkpoint"},
      dir + "/reference.log");
  EXPECT_TRUE(reference.ok());
  if (!reference.ok()) return {};
  EXPECT_EQ(DescribeWaitStatus((*reference)->Wait(absl::Seconds(240)).value_or(-1)), "exit 0")
      << (*reference)->Log();
  return TrainLosses(dir + "/reference.csv");
}

// Every step's loss equal to the reference's (to float rounding of the CSV).
inline void ExpectSameLosses(const std::vector<double>& actual,
                             const std::vector<double>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_LT(std::abs(actual[i] - expected[i]), 1e-5 * expected[i])
        << "step " << i + 1 << ": " << actual[i] << " vs " << expected[i];
  }
}

}  // namespace resbm::testing

#endif  // RESBM_TESTS_TESTING_JOB_FILES_H_
