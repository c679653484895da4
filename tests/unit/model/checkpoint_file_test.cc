// Checkpoints round-trip exactly and refuse corrupt files with a clear status.
#include "common/model/checkpoint_file.h"

#include <torch/torch.h>

#include <cstdio>
#include <fstream>

#include "common/model/stage_runner.h"
#include "gtest/gtest.h"
#include "tests/testing/tiny_model.h"

namespace resbm {
namespace {

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/resbm_ckpt_" + std::to_string(::getpid()) + "_" + name;
}

TEST(CheckpointFileTest, RoundTripsEveryStoredDtype) {
  CheckpointContents contents;
  contents.stage = 2;
  contents.step = 17;
  contents.tensors = {{"a", torch::randn({3, 4})},
                      {"b", torch::randn({2}, torch::kFloat64)},
                      {"c", torch::tensor({5}, torch::kInt64)},
                      {"d", torch::randn({4}).to(torch::kBFloat16)},
                      {"scalar", torch::tensor(1.5)}};
  const std::string path = TempPath("roundtrip");
  ASSERT_TRUE(CheckpointFile::Write(path, contents).ok());
  auto read = CheckpointFile::Read(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->stage, 2);
  EXPECT_EQ(read->step, 17);
  ASSERT_EQ(read->tensors.size(), contents.tensors.size());
  for (size_t i = 0; i < contents.tensors.size(); ++i) {
    EXPECT_EQ(read->tensors[i].first, contents.tensors[i].first);
    EXPECT_TRUE(torch::equal(read->tensors[i].second, contents.tensors[i].second))
        << contents.tensors[i].first;
  }
  std::remove(path.c_str());
}

TEST(CheckpointFileTest, RefusesCorruptAndTruncatedFiles) {
  CheckpointContents contents;
  contents.tensors = {{"w", torch::randn({16})}};
  const std::string path = TempPath("corrupt");
  ASSERT_TRUE(CheckpointFile::Write(path, contents).ok());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto write = [&](const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
  };
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x40;
  write(flipped);
  auto read = CheckpointFile::Read(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(read.status().message().find("checksum"), std::string::npos) << read.status();

  write(bytes.substr(0, bytes.size() - 20));
  EXPECT_EQ(CheckpointFile::Read(path).status().code(), absl::StatusCode::kDataLoss);
  write("not a checkpoint at all");
  EXPECT_NE(CheckpointFile::Read(path).status().message().find("bad magic"), std::string::npos);
  std::remove(path.c_str());
  EXPECT_EQ(CheckpointFile::Read(path).status().code(), absl::StatusCode::kNotFound);
}

// Stage 0 of the tiny model in 4 stages, ResBM 8x with an fp32 boundary.
StageRunnerOptions FirstOfFourStages() {
  StageRunnerOptions options;
  options.model = testing::TinyModel();
  options.compression = testing::Fp32Boundary(CompressionKind::kResbm, 8);
  options.spec = (*PlanStages(4, 1, {}))[0];
  return options;
}

// One training step of `runner` on `tokens` (as inputs and targets).
void TrainOneStep(StageRunner& runner, const torch::Tensor& tokens, int64_t index) {
  ASSERT_TRUE(runner.ForwardLoss(0, tokens, tokens, 1.0).ok());
  ASSERT_TRUE(runner.Backward(0, torch::Tensor()).ok());
  ASSERT_TRUE(runner.ApplyStep(index, 1.0).ok());
}

TEST(CheckpointFileTest, StageRunnerRestoresParametersAndOptimizerState) {
  StageRunnerOptions options = FirstOfFourStages();
  auto runner = StageRunner::Create(options);
  ASSERT_TRUE(runner.ok());
  auto tokens = torch::randint(64, {2, 16}, torch::kInt64);
  auto step = [&](StageRunner& r, int64_t index) { TrainOneStep(r, tokens, index); };
  step(**runner, 0);
  const std::string path = TempPath("stage");
  ASSERT_TRUE((*runner)->SaveCheckpoint(path, 1).ok());
  step(**runner, 1);

  options.seed = 999;  // Different init: everything must come from the file.
  auto restored = StageRunner::Create(options);
  ASSERT_TRUE(restored.ok());
  auto loaded_step = (*restored)->LoadCheckpoint(path);
  ASSERT_TRUE(loaded_step.ok()) << loaded_step.status();
  EXPECT_EQ(*loaded_step, 1);
  step(**restored, 1);
  auto a = (*runner)->Parameters(), b = (*restored)->Parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
  std::remove(path.c_str());
}

// A checkpoint whose optimizer state does not fit (here: a momentum of the wrong shape, after
// every parameter fitted) changes nothing: parameters and optimizer state stay as they were.
TEST(CheckpointFileTest, AFailedLoadLeavesTheStageAsItWas) {
  StageRunnerOptions options = FirstOfFourStages();
  auto source = StageRunner::Create(options);
  ASSERT_TRUE(source.ok());
  // One step, so the file's optimizer state differs from a fresh stage's zeros.
  auto tokens = torch::randint(64, {2, 16}, torch::kInt64);
  TrainOneStep(**source, tokens, 0);
  const std::string path = TempPath("broken");
  ASSERT_TRUE((*source)->SaveCheckpoint(path, 3).ok());
  auto contents = CheckpointFile::Read(path);
  ASSERT_TRUE(contents.ok()) << contents.status();
  // The last 2-D optimizer tensor: the ones before it load first, and must be put back.
  at::Tensor* last = nullptr;
  for (auto& [name, t] : contents->tensors) {
    if (name.rfind("optim.", 0) == 0 && t.dim() == 2) last = &t;
  }
  ASSERT_NE(last, nullptr);
  *last = torch::zeros({last->size(0) + 1, last->size(1)});
  ASSERT_TRUE(CheckpointFile::Write(path, *contents).ok());

  options.seed = 999;
  auto target = StageRunner::Create(options);
  ASSERT_TRUE(target.ok());
  NamedTensors params_before;
  for (const auto& [name, t] : (*target)->Parameters()) params_before.emplace_back(name, t.clone());
  NamedTensors state_before;
  for (const auto& [name, t] : (*target)->OptimizerState()) {
    state_before.emplace_back(name, t.clone());
  }
  auto loaded = (*target)->LoadCheckpoint(path);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition) << loaded.status();
  const auto params_after = (*target)->Parameters();
  ASSERT_EQ(params_after.size(), params_before.size());
  for (size_t i = 0; i < params_after.size(); ++i) {
    EXPECT_TRUE(torch::equal(params_after[i].second, params_before[i].second))
        << params_after[i].first << " changed by a load that failed";
  }
  const auto state_after = (*target)->OptimizerState();
  ASSERT_EQ(state_after.size(), state_before.size());
  for (size_t i = 0; i < state_after.size(); ++i) {
    EXPECT_TRUE(torch::equal(state_after[i].second, state_before[i].second))
        << state_after[i].first << " changed by a load that failed";
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace resbm
