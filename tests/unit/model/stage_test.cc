// Stages chained through the boundary code (and the wire codec) compute exactly what one
// unsplit model computes; the planner splits layers as documented.
#include "common/model/stage.h"

#include <torch/torch.h>

#include <map>

#include "common/model/stage_plan.h"
#include "common/model/stage_runner.h"
#include "common/wire/wire_codec.h"
#include "gtest/gtest.h"
#include "tests/testing/tiny_model.h"

namespace resbm {
namespace {

using ::resbm::testing::Fp32Boundary;
using ::resbm::testing::TinyModel;

TEST(PlanStagesTest, SplitsEvenlyWithTheRemainderFirst) {
  auto plan = PlanStages(5, 3, {});
  ASSERT_TRUE(plan.ok());
  std::vector<int64_t> sizes, firsts;
  for (const auto& spec : *plan) {
    sizes.push_back(spec.num_layers);
    firsts.push_back(spec.first_layer);
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{2, 2, 1}));
  EXPECT_EQ(firsts, (std::vector<int64_t>{0, 2, 4}));
  EXPECT_TRUE((*plan)[0].is_first());
  EXPECT_TRUE((*plan)[2].is_last());
}

TEST(PlanStagesTest, UsesAnExplicitList) {
  auto plan = PlanStages(8, 4, {3, 2, 2, 1});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ((*plan)[3], (StageSpec{3, 4, 7, 1}));
}

TEST(PlanStagesTest, RejectsInfeasibleInputsWithTheValue) {
  struct Row {
    int64_t layers, stages;
    std::vector<int64_t> list;
    std::string message;
  };
  for (const Row& row :
       {Row{4, 8, {}, "num_stages: 8; expected 1..4"}, Row{4, 0, {}, "num_stages: 0"},
        Row{0, 1, {}, "num_layers: 0"}, Row{4, 2, {3, 2}, "sums to 5"},
        Row{4, 2, {4}, "has 1 entries"}, Row{4, 2, {4, 0}, "layers_per_stage[1]: 0"}}) {
    auto plan = PlanStages(row.layers, row.stages, row.list);
    ASSERT_FALSE(plan.ok());
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(plan.status().message().find(row.message), std::string::npos) << plan.status();
  }
}

struct Batch {
  torch::Tensor tokens;   // (B, T)
  torch::Tensor targets;  // (B, T)
};

Batch RandomBatch(const ModelOptions& model, int64_t batch, uint64_t seed) {
  torch::manual_seed(seed);
  return {torch::randint(model.vocab_size, {batch, model.seq_len}, torch::kInt64),
          torch::randint(model.vocab_size, {batch, model.seq_len}, torch::kInt64)};
}

std::vector<std::unique_ptr<StageRunner>> MakeStages(const ModelOptions& model,
                                                     const CompressionOptions& compression,
                                                     int64_t num_stages) {
  auto plan = PlanStages(model.n_layers, num_stages, {});
  EXPECT_TRUE(plan.ok());
  std::vector<std::unique_ptr<StageRunner>> stages;
  for (const auto& spec : *plan) {
    StageRunnerOptions options;
    options.model = model;
    options.compression = compression;
    options.spec = spec;
    options.seed = 42;
    auto runner = StageRunner::Create(options);
    EXPECT_TRUE(runner.ok()) << runner.status();
    stages.push_back(std::move(*runner));
  }
  return stages;
}

torch::Tensor WireRoundTrip(const torch::Tensor& x, WireDtype dtype) {
  auto encoded = WireCodec::Encode(x, dtype);
  EXPECT_TRUE(encoded.ok()) << encoded.status();
  auto decoded = WireCodec::Decode(*encoded);
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return *decoded;
}

// One training microbatch through every stage, forward then backward, as the pipeline runs
// it: only wire tensors cross between stages. Returns the loss.
double ChainedForwardBackward(std::vector<std::unique_ptr<StageRunner>>& stages, const Batch& batch,
                              WireDtype dtype) {
  torch::Tensor x = batch.tokens;
  for (size_t s = 0; s + 1 < stages.size(); ++s) {
    auto z = stages[s]->Forward(0, x);
    EXPECT_TRUE(z.ok()) << z.status();
    x = WireRoundTrip(*z, dtype);
  }
  auto loss = stages.back()->ForwardLoss(0, x, batch.targets, 1.0);
  EXPECT_TRUE(loss.ok()) << loss.status();
  torch::Tensor grad;
  for (size_t s = stages.size(); s-- > 0;) {
    auto g = stages[s]->Backward(0, grad);
    EXPECT_TRUE(g.ok()) << g.status();
    if (s > 0) grad = WireRoundTrip(*g, dtype);
  }
  return *loss;
}

std::map<std::string, torch::Tensor> Gradients(
    const std::vector<std::unique_ptr<StageRunner>>& stages) {
  std::map<std::string, torch::Tensor> grads;
  for (const auto& stage : stages) {
    for (const auto& [name, p] : stage->Parameters()) {
      if (name.rfind("encoder.", 0) == 0 || name.rfind("decoder.", 0) == 0) continue;
      grads[name] = p.grad().clone();
    }
  }
  return grads;
}

double MaxRelativeDifference(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

TEST(StageTest, ChainedStagesEqualTheUnsplitModelWithoutCompression) {
  const ModelOptions model = TinyModel();
  const Batch batch = RandomBatch(model, 3, 11);
  auto whole = MakeStages(model, Fp32Boundary(CompressionKind::kNone, 1), 1);
  const double reference_loss = ChainedForwardBackward(whole, batch, WireDtype::kFp32);
  const auto reference = Gradients(whole);

  for (int64_t stages : {2, 4}) {
    auto split = MakeStages(model, Fp32Boundary(CompressionKind::kNone, 1), stages);
    const double loss = ChainedForwardBackward(split, batch, WireDtype::kFp32);
    EXPECT_NEAR(loss, reference_loss, 1e-6 * std::abs(reference_loss)) << stages << " stages";
    const auto grads = Gradients(split);
    ASSERT_EQ(grads.size(), reference.size());
    for (const auto& [name, g] : reference) {
      ASSERT_TRUE(grads.count(name)) << name;
      const double diff = MaxRelativeDifference(grads.at(name), g);
      EXPECT_LT(diff, 1e-5) << name << " with " << stages << " stages: max rel diff " << diff;
    }
  }
}

// With ResBM the split model differs from the unsplit one by design; what must hold is that
// the hand-off through the wire (detach, encode, decode, new leaf; gradient sent back the same
// way) equals one autograd graph through the same modules.
TEST(StageTest, WireHandOffEqualsOneAutogradGraphWithResbm) {
  const ModelOptions model = TinyModel();
  auto compression = Fp32Boundary(CompressionKind::kResbm, 8);
  compression.init_std = 0.05;
  const Batch batch = RandomBatch(model, 2, 12);
  auto split = MakeStages(model, compression, 2);
  const double loss = ChainedForwardBackward(split, batch, WireDtype::kFp32);

  auto plan = PlanStages(model.n_layers, 2, {});
  ASSERT_TRUE(plan.ok());
  Stage first(model, compression, (*plan)[0]);
  Stage last(model, compression, (*plan)[1]);
  first->InitParameters(42);
  last->InitParameters(42);
  auto graph_loss =
      StageImpl::Loss(last->forward(first->forward(batch.tokens, {}), {}), batch.targets);
  graph_loss.backward();
  EXPECT_NEAR(graph_loss.item<double>(), loss, 1e-6 * loss);

  std::map<std::string, torch::Tensor> graph_grads;
  for (const auto& item : first->named_parameters()) graph_grads[item.key()] = item.value().grad();
  for (const auto& item : last->named_parameters()) graph_grads[item.key()] = item.value().grad();
  for (const auto& stage : split) {
    for (const auto& [name, p] : stage->Parameters()) {
      ASSERT_TRUE(graph_grads.count(name)) << name;
      const double diff = MaxRelativeDifference(p.grad(), graph_grads.at(name));
      EXPECT_LT(diff, 1e-5) << name << ": max rel diff " << diff;
    }
  }
  // E and D receive gradient: they are trained.
  EXPECT_GT(graph_grads.at("encoder.E.weight").abs().max().item<double>(), 0.0);
  EXPECT_GT(graph_grads.at("decoder.D.weight").abs().max().item<double>(), 0.0);
}

TEST(StageTest, InitialisationDoesNotDependOnTheSplit) {
  const ModelOptions model = TinyModel();
  auto whole = MakeStages(model, Fp32Boundary(CompressionKind::kNone, 1), 1);
  auto split = MakeStages(model, Fp32Boundary(CompressionKind::kNone, 1), 4);
  std::map<std::string, torch::Tensor> reference;
  for (const auto& [name, p] : whole[0]->Parameters()) reference[name] = p;
  for (const auto& stage : split) {
    for (const auto& [name, p] : stage->Parameters()) {
      ASSERT_TRUE(reference.count(name)) << name;
      EXPECT_TRUE(torch::equal(reference[name], p)) << name;
    }
  }
}

TEST(StageRunnerTest, RefusesBadInputsWithClearErrors) {
  const ModelOptions model = TinyModel();
  auto stages = MakeStages(model, Fp32Boundary(CompressionKind::kResbm, 8), 2);
  // Wrong width for stage 1 (expects k = 4).
  auto bad =
      stages[1]->ForwardLoss(0, torch::zeros({2, 16, 5}), torch::zeros({2, 16}, torch::kInt64), 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("expected (B, T, 4)"), std::string::npos) << bad.status();
  // Token ids out of range.
  auto tokens = torch::full({1, 4}, model.vocab_size, torch::kInt64);
  auto out = stages[0]->Forward(0, tokens);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("expected [0, 64)"), std::string::npos) << out.status();
  // NaN activations.
  auto nan = torch::full({1, 4, 4}, std::nanf(""));
  auto loss = stages[1]->ForwardLoss(0, nan, torch::zeros({1, 4}, torch::kInt64), 1);
  EXPECT_EQ(loss.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(loss.status().message().find("non-finite values: the input of stage 1"),
            std::string::npos)
      << loss.status();
  // Backward without forward, duplicate microbatch.
  EXPECT_EQ(stages[0]->Backward(9, torch::zeros({1, 4, 4})).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(stages[0]->Forward(3, torch::zeros({1, 4}, torch::kInt64)).ok());
  EXPECT_EQ(stages[0]->Forward(3, torch::zeros({1, 4}, torch::kInt64)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Wrong gradient shape.
  auto g = stages[0]->Backward(3, torch::zeros({1, 4, 7}));
  EXPECT_NE(g.status().message().find("expected [1,4,4]"), std::string::npos) << g.status();
}

}  // namespace
}  // namespace resbm
