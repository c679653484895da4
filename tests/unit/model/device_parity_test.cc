// A two-stage pipeline trained for a few steps on each (device, compute dtype) lands where
// the CPU fp32 run lands, within stated tolerances: CUDA fp32 agrees to fp32 rounding, bf16
// autocast (CPU or CUDA) to bf16 rounding. Everything a stage holds lives on its device, the
// autocast region ends with the blocks, and checkpoints move between devices unchanged.
// Rows that need a GPU skip where there is none.
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model/autocast_guard.h"
#include "common/model/grad_clip.h"
#include "common/model/stage_runner.h"
#include "common/wire/wire_codec.h"
#include "gtest/gtest.h"
#include "tests/testing/devices.h"
#include "tests/testing/scoped_temp_dir.h"
#include "tests/testing/tiny_model.h"

namespace resbm {
namespace {

constexpr int kSteps = 3;
constexpr int64_t kMicrobatches = 2;

StageRunnerOptions StageOptions(const std::string& device, ComputeDtype dtype, int64_t index) {
  StageRunnerOptions options;
  options.model = testing::TinyModel();
  options.model.compute_dtype = dtype;
  options.compression.kind = CompressionKind::kResbm;
  options.compression.ratio = 8;  // k = 4
  options.compression.init_std = 0.02;
  options.compression.wire_dtype = WireDtype::kFp32;  // Only compute differs between runs.
  options.optimizer.schedule.total_steps = kSteps;
  options.spec = StageSpec{index, 2, 2 * index, 2};
  options.seed = 7;
  options.device = device;
  return options;
}

struct Pipeline {
  std::unique_ptr<StageRunner> first, last;
};

Pipeline MakePipeline(const std::string& device, ComputeDtype dtype) {
  return Pipeline{*StageRunner::Create(StageOptions(device, dtype, 0)),
                  *StageRunner::Create(StageOptions(device, dtype, 1))};
}

// Across the boundary as the transport carries it (through the host).
at::Tensor Cross(const at::Tensor& x) {
  return *WireCodec::Decode(*WireCodec::Encode(x, WireDtype::kFp32));
}

// One optimizer step over a fixed seeded batch; returns the step's mean loss.
double TrainStep(Pipeline& p, int step) {
  torch::manual_seed(100 + step);
  auto tokens = torch::randint(0, 64, {4, 17}, torch::kInt64);  // (B, T + 1)
  auto inputs = tokens.narrow(1, 0, 16), targets = tokens.narrow(1, 1, 16);
  double loss = 0;
  for (int64_t mb = 0; mb < kMicrobatches; ++mb) {
    auto x = inputs.narrow(0, 2 * mb, 2), y = targets.narrow(0, 2 * mb, 2);  // (2, T)
    auto z = p.first->Forward(mb, x);
    EXPECT_TRUE(z.ok()) << z.status();
    auto mb_loss = p.last->ForwardLoss(mb, Cross(*z), y, 1.0 / kMicrobatches);
    EXPECT_TRUE(mb_loss.ok()) << mb_loss.status();
    loss += *mb_loss / kMicrobatches;
    auto g = p.last->Backward(mb, at::Tensor());
    EXPECT_TRUE(g.ok()) << g.status();
    EXPECT_TRUE(p.first->Backward(mb, Cross(*g)).ok());
  }
  const double norm = std::sqrt(*p.first->GradSquaredNorm() + *p.last->GradSquaredNorm());
  const double clip = GradClipFactor(norm, 1.0);
  EXPECT_TRUE(p.first->ApplyStep(step, clip).ok());
  EXPECT_TRUE(p.last->ApplyStep(step, clip).ok());
  return loss;
}

std::map<std::string, at::Tensor> HostParameters(const Pipeline& p) {
  std::map<std::string, at::Tensor> out;
  for (const auto& runner : {p.first.get(), p.last.get()}) {
    for (const auto& [name, t] : runner->Parameters()) {
      out[absl::StrCat(runner->spec().index, ".", name)] = t.detach().cpu().clone();
    }
  }
  return out;
}

struct Trajectory {
  std::vector<double> losses;
  std::map<std::string, at::Tensor> initial, final;
};

Trajectory Train(const std::string& device, ComputeDtype dtype) {
  Pipeline p = MakePipeline(device, dtype);
  Trajectory t;
  t.initial = HostParameters(p);
  for (int step = 0; step < kSteps; ++step) t.losses.push_back(TrainStep(p, step));
  t.final = HostParameters(p);
  return t;
}

// ||a - b|| / ||b|| over every parameter's update (final - initial).
double RelativeUpdateError(const Trajectory& run, const Trajectory& reference) {
  double diff = 0, norm = 0;
  for (const auto& [name, final] : reference.final) {
    auto update = final - reference.initial.at(name);
    auto other = run.final.at(name) - run.initial.at(name);
    diff += (other - update).pow(2).sum().item<double>();
    norm += update.pow(2).sum().item<double>();
  }
  return std::sqrt(diff / norm);
}

struct ParityRow {
  std::string device;
  ComputeDtype dtype;
  double loss_relative;    // |loss - reference| / reference, every step
  double update_relative;  // RelativeUpdateError after kSteps
};

class DeviceParityTest : public ::testing::TestWithParam<ParityRow> {};

TEST_P(DeviceParityTest, TrainsLikeTheCpuInFp32) {
  const ParityRow& row = GetParam();
  if (row.device != "cpu") RESBM_SKIP_WITHOUT_CUDA();
  static const Trajectory reference = Train("cpu", ComputeDtype::kFp32);
  const Trajectory run = Train(row.device, row.dtype);
  for (int step = 0; step < kSteps; ++step) {
    const double relative =
        std::abs(run.losses[step] - reference.losses[step]) / reference.losses[step];
    EXPECT_LE(relative, row.loss_relative)
        << "step " << step << ": " << run.losses[step] << " vs " << reference.losses[step];
  }
  for (const auto& [name, initial] : reference.initial) {
    // Initialisation is drawn on the host from the seed: identical everywhere.
    EXPECT_TRUE(torch::equal(run.initial.at(name), initial)) << name;
  }
  const double update_error = RelativeUpdateError(run, reference);
  EXPECT_LE(update_error, row.update_relative);
  std::printf("%s %s: losses", row.device.c_str(), ComputeDtypeName(row.dtype).c_str());
  for (int step = 0; step < kSteps; ++step) {
    std::printf(" %.6f (fp32 cpu %.6f)", run.losses[step], reference.losses[step]);
  }
  std::printf("; update error %.3g\n", update_error);
  if (row.dtype == ComputeDtype::kBf16) {
    // bf16 really ran: fp32 and bf16 products do not round alike.
    EXPECT_GT(update_error, 1e-4) << "the bf16 run matches fp32: autocast did not apply";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rows, DeviceParityTest,
    ::testing::Values(
        // bf16 keeps 8 bits of mantissa (relative rounding 2^-9 per product); through two
        // stages of four blocks the loss moved by 6e-5 (relative) on the CPU, the Muon updates
        // (orthogonalised, so direction-sensitive) by 7%.
        ParityRow{"cpu", ComputeDtype::kBf16, 2e-3, 0.2},
        // fp32 kernels differ from the CPU's only in summation order.
        ParityRow{"cuda:0", ComputeDtype::kFp32, 1e-4, 1e-2},
        ParityRow{"cuda:0", ComputeDtype::kBf16, 2e-3, 0.2}),
    [](const ::testing::TestParamInfo<ParityRow>& info) {
      return absl::StrCat(info.param.device == "cpu" ? "Cpu" : "Cuda",
                          info.param.dtype == ComputeDtype::kBf16 ? "Bf16" : "Fp32");
    });

TEST(DeviceResidencyTest, ParametersGradientsAndOptimizerStateLiveOnTheDevice) {
  for (const std::string& device : testing::TestDevices()) {
    Pipeline p = MakePipeline(device, ComputeDtype::kBf16);
    TrainStep(p, 0);
    // Gradients are zeroed, not freed, by the step: they stay where the parameters are.
    for (const auto& runner : {p.first.get(), p.last.get()}) {
      for (const auto& [name, t] : runner->Parameters()) {
        EXPECT_EQ(t.device().str(), device) << name;
        EXPECT_EQ(t.scalar_type(), torch::kFloat32) << name << ": bf16 is for compute only";
        ASSERT_TRUE(t.grad().defined()) << name;
        EXPECT_EQ(t.grad().device().str(), device) << name;
        EXPECT_EQ(t.grad().scalar_type(), torch::kFloat32) << name;
      }
      ASSERT_FALSE(runner->OptimizerState().empty());
      for (const auto& [name, t] : runner->OptimizerState()) {
        EXPECT_EQ(t.device().str(), device) << name;
      }
    }
  }
}

TEST(DeviceResidencyTest, Bf16AutocastEndsWithTheBlocks) {
  for (const std::string& device : testing::TestDevices()) {
    Pipeline p = MakePipeline(device, ComputeDtype::kBf16);
    torch::manual_seed(3);
    auto z = p.first->Forward(0, torch::randint(0, 64, {2, 16}, torch::kInt64));
    ASSERT_TRUE(z.ok()) << z.status();
    // The boundary's z is what the encoder computes outside autocast: fp32.
    EXPECT_EQ(z->scalar_type(), torch::kFloat32);
    EXPECT_EQ(z->device().str(), device);
    const auto type = torch::Device(device).type();
    EXPECT_FALSE(AutocastGuard::Enabled(type)) << device;
    p.first->AbortStep();
  }
}

TEST(DeviceResidencyTest, AutocastGuardRestoresWhatWasThere) {
  EXPECT_FALSE(AutocastGuard::Enabled(c10::DeviceType::CPU));
  {
    AutocastGuard outer(c10::DeviceType::CPU, ComputeDtype::kBf16);
    EXPECT_TRUE(AutocastGuard::Enabled(c10::DeviceType::CPU));
    {
      AutocastGuard fp32(c10::DeviceType::CPU, ComputeDtype::kFp32);  // A no-op.
      EXPECT_TRUE(AutocastGuard::Enabled(c10::DeviceType::CPU));
      AutocastGuard inner(c10::DeviceType::CPU, ComputeDtype::kBf16);
      auto y = torch::matmul(torch::ones({4, 4}), torch::ones({4, 4}));
      EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
    }
    EXPECT_TRUE(AutocastGuard::Enabled(c10::DeviceType::CPU));
  }
  EXPECT_FALSE(AutocastGuard::Enabled(c10::DeviceType::CPU));
  EXPECT_EQ(torch::matmul(torch::ones({4, 4}), torch::ones({4, 4})).scalar_type(),
            torch::kFloat32);
}

TEST(DeviceResidencyTest, ACheckpointWrittenOnTheGpuLoadsOnTheCpu) {
  RESBM_SKIP_WITHOUT_CUDA();
  ScopedTempDir dir;
  Pipeline gpu = MakePipeline("cuda:0", ComputeDtype::kFp32);
  TrainStep(gpu, 0);
  Pipeline cpu = MakePipeline("cpu", ComputeDtype::kFp32);
  for (auto [from, to] : {std::pair{gpu.first.get(), cpu.first.get()},
                          std::pair{gpu.last.get(), cpu.last.get()}}) {
    const std::string path = dir.path() + "/stage" + std::to_string(from->spec().index) + ".ckpt";
    ASSERT_TRUE(from->SaveCheckpoint(path, 1).ok());
    auto step = to->LoadCheckpoint(path);
    ASSERT_TRUE(step.ok()) << step.status();
    EXPECT_EQ(*step, 1);
  }
  auto on_gpu = HostParameters(gpu), on_cpu = HostParameters(cpu);
  for (const auto& [name, t] : on_gpu) EXPECT_TRUE(torch::equal(t, on_cpu.at(name))) << name;
  for (auto [from, to] : {std::pair{gpu.first.get(), cpu.first.get()},
                          std::pair{gpu.last.get(), cpu.last.get()}}) {
    const auto moved = to->OptimizerState();
    const auto original = from->OptimizerState();
    ASSERT_EQ(moved.size(), original.size());
    for (size_t i = 0; i < moved.size(); ++i) {
      EXPECT_TRUE(torch::equal(moved[i].second, original[i].second.cpu())) << moved[i].first;
    }
  }
  // The next step (Muon's momentum carried over) lands in the same place on both.
  const double gpu_loss = TrainStep(gpu, 1), cpu_loss = TrainStep(cpu, 1);
  EXPECT_NEAR(gpu_loss, cpu_loss, 1e-5 * cpu_loss);
  on_gpu = HostParameters(gpu);
  on_cpu = HostParameters(cpu);
  for (const auto& [name, t] : on_gpu) {
    EXPECT_LE((t - on_cpu.at(name)).abs().max().item<double>(), 1e-4) << name;
  }
}

}  // namespace
}  // namespace resbm
