// Muon and AdamW against hand-computed references; the schedule and the clip factor.
#include <torch/torch.h>

#include <cmath>

#include "common/model/adamw.h"
#include "common/model/grad_clip.h"
#include "common/model/lr_schedule.h"
#include "common/model/muon.h"
#include "common/model/stage_optimizer.h"
#include "gtest/gtest.h"

namespace resbm {
namespace {

TEST(MuonTest, OrthogonalizedUpdateHasSingularValuesNearOne) {
  torch::manual_seed(7);
  for (auto shape : {std::vector<int64_t>{64, 128}, std::vector<int64_t>{128, 64},
                     std::vector<int64_t>{32, 96}}) {
    auto g = torch::randn(shape);
    auto sv = at::linalg_svdvals(Muon::Orthogonalize(g, 5));
    const double lo = sv.min().item<double>(), hi = sv.max().item<double>();
    EXPECT_GT(lo, 0.5) << shape[0] << "x" << shape[1];
    EXPECT_LT(hi, 1.5) << shape[0] << "x" << shape[1];
  }
}

// The Newton-Schulz iteration written out with plain doubles on a 2x3 matrix.
TEST(MuonTest, OneStepMatchesAHandComputedReference) {
  const double g[2][3] = {{0.5, -1.0, 0.25}, {2.0, 0.0, -0.75}};
  double x[2][3];
  double norm = 0.0;
  for (auto& row : g)
    for (double v : row) norm += v * v;
  norm = std::sqrt(norm) + 1e-7;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) x[i][j] = g[i][j] / norm;
  const double a = 3.4445, b = -4.7750, c = 2.0315;
  for (int it = 0; it < 5; ++it) {
    double gram[2][2] = {}, poly[2][2] = {}, next[2][3] = {};
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        for (int k = 0; k < 3; ++k) gram[i][j] += x[i][k] * x[j][k];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        poly[i][j] = b * gram[i][j];
        for (int k = 0; k < 2; ++k) poly[i][j] += c * gram[i][k] * gram[k][j];
      }
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) {
        next[i][j] = a * x[i][j];
        for (int k = 0; k < 2; ++k) next[i][j] += poly[i][k] * x[k][j];
      }
    std::memcpy(x, next, sizeof(x));
  }
  // One Muon step from p = 0 with lr 0.1, momentum 0.95, Nesterov: buf = g, u = g + 0.95 g,
  // so the update is Orthogonalize(1.95 g) = Orthogonalize(g); scale sqrt(max(1, 2/3)) = 1.
  auto param = torch::zeros({2, 3});
  param.mutable_grad() = torch::tensor({0.5, -1.0, 0.25, 2.0, 0.0, -0.75}).view({2, 3});
  MuonOptions options;
  options.lr = 0.1;
  Muon muon({{"w", param}}, options);
  muon.Step(1.0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) {
      EXPECT_NEAR(param[i][j].item<double>(), -0.1 * x[i][j], 1e-5) << i << "," << j;
    }
}

TEST(MuonTest, ScalesTallMatricesBySqrtOfTheAspectRatio) {
  auto tall = torch::zeros({8, 2});
  tall.mutable_grad() = torch::randn({8, 2});
  MuonOptions options;
  options.lr = 1.0;
  options.nesterov = false;
  Muon muon({{"w", tall}}, options);
  muon.Step(1.0);
  auto expected = -2.0 * Muon::Orthogonalize(tall.grad(), 5);
  EXPECT_TRUE(torch::allclose(tall, expected, 1e-5, 1e-6));
}

TEST(AdamWTest, FirstStepMovesEachWeightByLrTimesSign) {
  auto param = torch::ones({4});
  param.mutable_grad() = torch::tensor({0.5, -2.0, 1e-3, -1e-3});
  AdamWOptions options;
  options.lr = 0.01;
  options.weight_decay = 0.1;
  AdamW adamw({{"w", param}}, options);
  adamw.Step(1.0);
  // m_hat = g, v_hat = g^2 after bias correction: update = lr * g / (|g| + eps).
  auto decayed = 1.0 - 0.01 * 0.1;
  auto expected = torch::tensor({decayed - 0.01, decayed + 0.01, decayed - 0.01, decayed + 0.01});
  EXPECT_TRUE(torch::allclose(param, expected, 1e-5, 1e-6)) << param;
}

TEST(LrScheduleTest, WarmsUpThenDecaysToTheFloor) {
  LrScheduleOptions options;
  options.warmup_steps = 10;
  options.total_steps = 110;
  options.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(LrMultiplier(options, 0), 0.1);
  EXPECT_DOUBLE_EQ(LrMultiplier(options, 9), 1.0);
  EXPECT_DOUBLE_EQ(LrMultiplier(options, 10), 1.0);
  EXPECT_NEAR(LrMultiplier(options, 109), 0.1, 1e-12);
  EXPECT_NEAR(LrMultiplier(options, 10 + 99 / 2.0), 0.55, 1e-2);
  options.decay = LrDecay::kLinear;
  EXPECT_NEAR(LrMultiplier(options, 59), 1.0 - 0.9 * 49.0 / 99.0, 1e-12);
  options.decay = LrDecay::kConstant;
  EXPECT_DOUBLE_EQ(LrMultiplier(options, 100), 1.0);
}

TEST(StageOptimizerTest, GroupsParametersAsTheDesignSays) {
  EXPECT_TRUE(StageOptimizer::IsHiddenMatrix("layer0.attn.wq.weight", torch::zeros({4, 4})));
  EXPECT_TRUE(StageOptimizer::IsHiddenMatrix("encoder.E.weight", torch::zeros({1, 4})));
  EXPECT_FALSE(StageOptimizer::IsHiddenMatrix("embed.weight", torch::zeros({8, 4})));
  EXPECT_FALSE(StageOptimizer::IsHiddenMatrix("head.weight", torch::zeros({8, 4})));
  EXPECT_FALSE(StageOptimizer::IsHiddenMatrix("layer0.attn_norm.weight", torch::zeros({4})));
}

TEST(StageOptimizerTest, ClipFactorCapsTheGlobalNorm) {
  EXPECT_DOUBLE_EQ(GradClipFactor(0.5, 1.0), 1.0);
  EXPECT_NEAR(GradClipFactor(4.0, 1.0), 0.25, 1e-6);
  EXPECT_DOUBLE_EQ(GradClipFactor(100.0, 0.0), 1.0);
}

TEST(StageOptimizerTest, StateRoundTrips) {
  auto w = torch::randn({3, 3});
  auto g = torch::randn({3});
  NamedTensors params = {{"layer0.mlp.w1.weight", w}, {"layer0.mlp_norm.weight", g}};
  OptimizerOptions options;
  StageOptimizer first(params, options);
  w.mutable_grad() = torch::randn({3, 3});
  g.mutable_grad() = torch::randn({3});
  first.Step(0, 1.0);
  auto state = first.State();
  ASSERT_EQ(state.size(), 4u);  // momentum, exp_avg, exp_avg_sq, step

  auto w2 = w.clone(), g2 = g.clone();
  StageOptimizer second({{"layer0.mlp.w1.weight", w2}, {"layer0.mlp_norm.weight", g2}}, options);
  ASSERT_TRUE(second.LoadState(state).ok());
  for (auto* pair : {&w, &w2}) pair->mutable_grad() = torch::ones({3, 3});
  for (auto* pair : {&g, &g2}) pair->mutable_grad() = torch::ones({3});
  first.Step(1, 1.0);
  second.Step(1, 1.0);
  EXPECT_TRUE(torch::equal(w, w2));
  EXPECT_TRUE(torch::equal(g, g2));
  EXPECT_FALSE(second.LoadState({}).ok());
}

}  // namespace
}  // namespace resbm
