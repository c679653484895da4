#include "common/model/outer_optimizer.h"

#include <torch/torch.h>

#include "gtest/gtest.h"

namespace resbm {
namespace {

OuterOptions Fp32(double lr, double momentum) {
  OuterOptions options;
  options.steps = 2;
  options.lr = lr;
  options.momentum = momentum;
  options.dtype = WireDtype::kFp32;
  return options;
}

// Two replicas start at w = (1, 2); A moves to (0.5, 2.5), B to (0.9, 1.7). Outer gradient
// g = mean(anchor - w) = (0.3, -0.1); m = g; w = anchor - lr (g + 0.9 m) = anchor - 1.33 g.
TEST(OuterOptimizerTest, TakesANesterovStepOnTheMeanChangeFromTheAnchor) {
  torch::NoGradGuard no_grad;
  at::Tensor a = torch::tensor({1.0f, 2.0f}), b = torch::tensor({1.0f, 2.0f});
  OuterOptimizer outer_a({{"w", a}}, Fp32(0.7, 0.9)), outer_b({{"w", b}}, Fp32(0.7, 0.9));
  a.copy_(torch::tensor({0.5f, 2.5f}));
  b.copy_(torch::tensor({0.9f, 1.7f}));
  const std::vector<std::string> deltas = {*outer_a.EncodeDelta(), *outer_b.EncodeDelta()};
  ASSERT_TRUE(outer_a.Step(deltas).ok());
  ASSERT_TRUE(outer_b.Step(deltas).ok());
  EXPECT_NEAR(a[0].item<float>(), 1.0f - 0.7f * 1.9f * 0.3f, 1e-6);
  EXPECT_NEAR(a[1].item<float>(), 2.0f + 0.7f * 1.9f * 0.1f, 1e-6);
  EXPECT_TRUE(torch::equal(a, b));  // The same bytes in the same order: the same result.
  // A second period with no local change: g = 0, m = 0.9 m, w -= lr (0.9 * 0.9 m).
  const at::Tensor before = a.clone();
  ASSERT_TRUE(outer_a.Step({*outer_a.EncodeDelta(), *outer_a.EncodeDelta()}).ok());
  EXPECT_NEAR(a[0].item<float>(), before[0].item<float>() - 0.7f * 0.81f * 0.3f, 1e-6);
}

TEST(OuterOptimizerTest, EncodesTheChangeInTheWireDtypeAndRefusesAForeignSize) {
  torch::NoGradGuard no_grad;
  at::Tensor w = torch::zeros({300});  // Two rows of 256 once padded.
  OuterOptions bf16 = Fp32(0.7, 0.9), int8 = bf16;
  bf16.dtype = WireDtype::kBf16;
  int8.dtype = WireDtype::kInt8;
  EXPECT_EQ(OuterOptimizer({{"w", w}}, bf16).EncodeDelta()->size(), 512u * 2);
  EXPECT_EQ(OuterOptimizer({{"w", w}}, int8).EncodeDelta()->size(), 2u * 4 + 512u);
  OuterOptimizer outer({{"w", w}}, int8);
  const absl::Status wrong = outer.Step({std::string(7, '\0')});
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.message().find("replica 0"), std::string::npos) << wrong;
  EXPECT_TRUE(torch::equal(w, torch::zeros({300})));
}

TEST(OuterOptimizerTest, StateRoundTripsAndAStateOfAnotherShapeChangesNothing) {
  torch::NoGradGuard no_grad;
  at::Tensor w = torch::tensor({1.0f, 2.0f});
  OuterOptimizer outer({{"w", w}}, Fp32(0.7, 0.9));
  w.add_(1.0f);
  ASSERT_TRUE(outer.Step({*outer.EncodeDelta()}).ok());
  at::Tensor v = torch::tensor({5.0f, 5.0f});
  OuterOptimizer other({{"w", v}}, Fp32(0.7, 0.9));
  ASSERT_TRUE(other.LoadState(outer.State()).ok());
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(torch::equal(other.State()[i].second, outer.State()[i].second));
  }
  const absl::Status wrong = other.LoadState({{"anchor.w", torch::zeros({3})}});
  EXPECT_EQ(wrong.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(torch::equal(other.State()[0].second, outer.State()[0].second));
}

}  // namespace
}  // namespace resbm
