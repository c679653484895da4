// Device strings are parsed, checked against the GPUs this process sees and named
// canonically; what cannot be used is refused with the field, the value and the choices.
#include "common/model/compute_device.h"

#include <torch/cuda.h>

#include "absl/strings/str_cat.h"
#include "common/model/stage_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/devices.h"
#include "tests/testing/tiny_model.h"

namespace resbm {
namespace {

using ::testing::HasSubstr;

TEST(ComputeDeviceTest, CpuIsAlwaysThere) {
  auto device = ResolveComputeDevice("--device", "cpu");
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ(*device, "cpu");
}

TEST(ComputeDeviceTest, RefusesWhatIsNotADeviceNamingTheChoices) {
  for (const char* bad : {"", "tpu", "gpu:0", "cuda:x", "cuda:-1", "cpu:1", "cuda:0:1", "vulkan"}) {
    auto device = ResolveComputeDevice("--device", bad);
    ASSERT_FALSE(device.ok()) << bad;
    EXPECT_EQ(device.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(device.status().message(), HasSubstr(absl::StrCat("--device: '", bad, "'")));
    EXPECT_THAT(device.status().message(), HasSubstr("expected cpu"));
  }
}

TEST(ComputeDeviceTest, CudaWithoutAGpuIsAFailedPrecondition) {
  if (CudaAvailable()) GTEST_SKIP() << "this process sees a GPU";
  for (const char* cuda : {"cuda", "cuda:0", "cuda:3"}) {
    auto device = ResolveComputeDevice("--device", cuda);
    ASSERT_FALSE(device.ok()) << cuda;
    EXPECT_EQ(device.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(device.status().message(), HasSubstr("no CUDA device is available"));
    EXPECT_THAT(device.status().message(), HasSubstr("expected cpu"));
  }
}

TEST(ComputeDeviceTest, CudaIsNamedWithItsIndexAndCheckedAgainstTheGpuCount) {
  RESBM_SKIP_WITHOUT_CUDA();
  auto first = ResolveComputeDevice("--device", "cuda");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, "cuda:0");
  const int64_t gpus = static_cast<int64_t>(torch::cuda::device_count());
  auto last = ResolveComputeDevice("--device", absl::StrCat("cuda:", gpus - 1));
  ASSERT_TRUE(last.ok()) << last.status();
  auto past = ResolveComputeDevice("--device", absl::StrCat("cuda:", gpus));
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(past.status().message(), HasSubstr(absl::StrCat("sees ", gpus, " CUDA device")));
}

TEST(ComputeDeviceTest, DeviceMemoryGrowsByTheStagesParameters) {
  for (const std::string& device : testing::TestDevices()) {
    StageRunnerOptions options;
    options.model = testing::TinyModel();
    options.model.d_model = 512;  // 10 M parameters, 40 MB: far above allocator noise.
    options.model.mlp_hidden = 1024;
    options.model.n_heads = 8;
    options.compression.ratio = 8;
    options.spec = StageSpec{1, 3, 0, 4};  // A middle stage: no embedding, no head.
    options.device = device;
    const double before = DeviceMemoryBytes(device == "cpu" ? "cpu" : "cuda:0");
    auto runner = StageRunner::Create(options);
    ASSERT_TRUE(runner.ok()) << runner.status();
    double parameter_bytes = 0;
    for (const auto& [name, p] : (*runner)->Parameters()) {
      parameter_bytes += static_cast<double>(p.numel() * p.element_size());
    }
    // On CUDA the allocator's own count; on the CPU the resident set (the parameters are
    // written at initialisation, so their pages are resident). The optimizer's state comes
    // on top.
    EXPECT_GE(DeviceMemoryBytes((*runner)->device()) - before, parameter_bytes) << device;
  }
}

TEST(ComputeDeviceTest, AStageRunnerRefusesADeviceItCannotUse) {
  StageRunnerOptions options;
  options.model = testing::TinyModel();
  options.compression.ratio = 8;
  options.spec = StageSpec{0, 1, 0, 4};
  options.device = "tpu:0";
  auto runner = StageRunner::Create(options);
  ASSERT_FALSE(runner.ok());
  EXPECT_EQ(runner.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(runner.status().message(), HasSubstr("device: 'tpu:0'"));
}

}  // namespace
}  // namespace resbm
