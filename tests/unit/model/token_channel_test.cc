// The token channel (h' = pad_d(z) + D(z) + T_s[tokens] on stages after the first) and the
// boundary-half variants (normed input, two-layer maps): what each registers, what it
// computes, what trains and what a checkpoint holds, and the seam's errors for missing or
// misplaced token ids.
#include "common/model/token_channel.h"

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>

#include "common/model/boundary_decoder.h"
#include "common/model/boundary_encoder.h"
#include "common/model/stage.h"
#include "common/model/stage_optimizer.h"
#include "common/model/stage_plan.h"
#include "common/model/stage_runner.h"
#include "common/model/token_id_bytes.h"
#include "gtest/gtest.h"
#include "tests/testing/tiny_model.h"

namespace resbm {
namespace {

using ::resbm::testing::Fp32Boundary;
using ::resbm::testing::TinyModel;

CompressionOptions WithChannel(TokenChannelKind kind) {
  CompressionOptions compression = Fp32Boundary(CompressionKind::kResbm, 8);
  compression.token_channel = kind;
  compression.token_channel_rank = 4;
  return compression;
}

std::map<std::string, torch::Tensor> ParametersOf(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : module.named_parameters()) out[item.key()] = item.value();
  return out;
}

std::unique_ptr<StageRunner> Runner(const CompressionOptions& compression, int64_t index,
                                    int64_t stages = 2) {
  auto plan = PlanStages(TinyModel().n_layers, stages, {});
  EXPECT_TRUE(plan.ok());
  StageRunnerOptions options;
  options.model = TinyModel();
  options.compression = compression;
  options.spec = (*plan)[index];
  options.seed = 7;
  auto runner = StageRunner::Create(options);
  EXPECT_TRUE(runner.ok()) << runner.status();
  return std::move(*runner);
}

// The rule the proto and the export's config.json state, written out again here.
float FixedValue(uint64_t stage, uint64_t vocab, uint64_t d, uint64_t v, uint64_t j, float std) {
  uint64_t z = (stage * vocab + v) * d + j + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return (z >> 63) == 0 ? std : -std;
}

TEST(TokenChannelTest, LearnedTableIsALookupTrainedByAdamW) {
  const ModelOptions model = TinyModel();
  TokenChannel channel(model, WithChannel(TokenChannelKind::kLearned), 1);
  auto params = ParametersOf(*channel);
  ASSERT_EQ(params.size(), 1u);
  const torch::Tensor table = params.at("table.weight");
  EXPECT_EQ(table.sizes(), (std::vector<int64_t>{model.vocab_size, model.d_model}));
  auto tokens = torch::tensor({{3, 5, 3}}, torch::kInt64);  // (1, 3)
  auto out = channel->forward(tokens);                      // (1, 3, d)
  EXPECT_TRUE(torch::equal(out[0][0], table[3]));
  EXPECT_TRUE(torch::equal(out[0][1], table[5]));
  out.sum().backward();
  // Rows of the ids seen get a gradient (row 3 twice), the others none.
  EXPECT_TRUE(torch::equal(table.grad()[3], torch::full({model.d_model}, 2.0f)));
  EXPECT_EQ(table.grad()[4].abs().sum().item<float>(), 0.0f);
  // An embedding table: AdamW, not Muon.
  EXPECT_FALSE(StageOptimizer::IsHiddenMatrix("token_channel.table.weight", table));
}

TEST(TokenChannelTest, FixedTableIsTheDocumentedSignsAndNoParameter) {
  const ModelOptions model = TinyModel();
  for (int64_t stage : {1, 3}) {
    TokenChannel channel(model, WithChannel(TokenChannelKind::kFixed), stage);
    EXPECT_TRUE(channel->parameters().empty());
    auto tokens = torch::tensor({{0, 63, 17}}, torch::kInt64);
    auto out = channel->forward(tokens);  // (1, 3, d)
    const float std = static_cast<float>(model.init_std);
    for (int64_t t = 0; t < 3; ++t) {
      const int64_t v = tokens[0][t].item<int64_t>();
      for (int64_t j = 0; j < model.d_model; ++j) {
        ASSERT_EQ(out[0][t][j].item<float>(),
                  FixedValue(stage, model.vocab_size, model.d_model, v, j, std))
            << "stage " << stage << " token " << v << " column " << j;
      }
    }
  }
  // Different stages read different codes; both are balanced signs.
  TokenChannel one(model, WithChannel(TokenChannelKind::kFixed), 1);
  TokenChannel two(model, WithChannel(TokenChannelKind::kFixed), 2);
  auto all = torch::arange(model.vocab_size).view({1, -1});
  EXPECT_FALSE(torch::equal(one->forward(all), two->forward(all)));
  EXPECT_LT(one->forward(all).mean().abs().item<double>(), 0.1 * model.init_std);
}

TEST(TokenChannelTest, FactorizedIsATableTimesAProjection) {
  const ModelOptions model = TinyModel();
  TokenChannel channel(model, WithChannel(TokenChannelKind::kFactorized), 1);
  auto params = ParametersOf(*channel);
  ASSERT_EQ(params.size(), 2u);
  const torch::Tensor table = params.at("table.weight"), proj = params.at("proj.weight");
  EXPECT_EQ(table.sizes(), (std::vector<int64_t>{model.vocab_size, 4}));
  EXPECT_EQ(proj.sizes(), (std::vector<int64_t>{model.d_model, 4}));
  torch::NoGradGuard no_grad;
  table.normal_();
  proj.normal_();
  auto tokens = torch::tensor({{9, 2}}, torch::kInt64);
  auto expected = torch::matmul(table.index_select(0, tokens.view(-1)), proj.t());  // (2, d)
  EXPECT_TRUE(torch::allclose(channel->forward(tokens)[0], expected));
  EXPECT_FALSE(StageOptimizer::IsHiddenMatrix("token_channel.table.weight", table));
  EXPECT_TRUE(StageOptimizer::IsHiddenMatrix("token_channel.proj.weight", proj));
}

TEST(TokenChannelTest, OnlyStagesAfterTheFirstHaveOneAndTheirCheckpointsHoldWhatTrains) {
  for (TokenChannelKind kind :
       {TokenChannelKind::kLearned, TokenChannelKind::kFixed, TokenChannelKind::kFactorized}) {
    SCOPED_TRACE(TokenChannelName(kind));
    auto first = Runner(WithChannel(kind), 0, 3);
    auto middle = Runner(WithChannel(kind), 1, 3);
    EXPECT_FALSE(first->uses_token_ids());
    EXPECT_TRUE(middle->uses_token_ids());
    int channel_params = 0;
    for (const auto& [name, p] : middle->Parameters()) {
      if (name.rfind("token_channel.", 0) == 0) ++channel_params;
    }
    EXPECT_EQ(channel_params, kind == TokenChannelKind::kLearned      ? 1
                              : kind == TokenChannelKind::kFactorized ? 2
                                                                      : 0);
    for (const auto& [name, p] : first->Parameters()) {
      EXPECT_EQ(name.rfind("token_channel.", 0), std::string::npos) << name;
    }
  }
  // Without a channel nothing reads the ids.
  EXPECT_FALSE(Runner(WithChannel(TokenChannelKind::kNone), 1)->uses_token_ids());
}

TEST(TokenChannelTest, TheIdsChangeWhatTheStageComputes) {
  auto last = Runner(WithChannel(TokenChannelKind::kLearned), 1);
  torch::manual_seed(3);
  auto z = torch::randn({2, 8, 4});  // (B, T, k)
  auto targets = torch::randint(64, {2, 8}, torch::kInt64);
  auto a = last->EvaluateLoss(z, targets, torch::zeros({2, 8}, torch::kInt64));
  auto b = last->EvaluateLoss(z, targets, torch::full({2, 8}, 5, torch::kInt64));
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_NE(*a, *b);
  // A training forward and backward: the table's gradient is on the rows of the ids.
  auto ids = torch::full({2, 8}, 11, torch::kInt64);
  ASSERT_TRUE(last->ForwardLoss(0, z, targets, 1.0, ids).ok());
  ASSERT_TRUE(last->Backward(0, torch::Tensor()).ok());
  for (const auto& [name, grad] : last->Gradients()) {
    if (name != "token_channel.table.weight") continue;
    EXPECT_GT(grad[11].abs().sum().item<double>(), 0.0);
    EXPECT_EQ(grad[12].abs().sum().item<double>(), 0.0);
  }
}

TEST(TokenChannelTest, TheSeamRefusesMissingMisshapedOrMisplacedIds) {
  auto first = Runner(WithChannel(TokenChannelKind::kLearned), 0);
  auto last = Runner(WithChannel(TokenChannelKind::kLearned), 1);
  auto z = torch::zeros({2, 8, 4});
  auto targets = torch::zeros({2, 8}, torch::kInt64);
  auto missing = last->EvaluateLoss(z, targets);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("stage 1 tokens: undefined; expected the "
                                            "microbatch's int64 token ids (B, T) matching the "
                                            "input [2,8,4] (the stage has a token channel)"),
            std::string::npos)
      << missing.status();
  auto misshaped = last->EvaluateLoss(z, targets, torch::zeros({2, 7}, torch::kInt64));
  EXPECT_NE(misshaped.status().message().find("stage 1 tokens: [2,7]"), std::string::npos)
      << misshaped.status();
  auto out_of_range = last->EvaluateLoss(z, targets, torch::full({2, 8}, 64, torch::kInt64));
  EXPECT_NE(out_of_range.status().message().find(
                "stage 1 tokens: token ids span [64, 64]; expected [0, 64)"),
            std::string::npos)
      << out_of_range.status();
  auto misplaced =
      first->Evaluate(torch::zeros({2, 8}, torch::kInt64), torch::zeros({2, 8}, torch::kInt64));
  EXPECT_NE(misplaced.status().message().find("stage 0 tokens: [2,8]; expected none"),
            std::string::npos)
      << misplaced.status();
  // A refused forward leaves nothing in flight.
  EXPECT_FALSE(last->ForwardLoss(0, z, targets, 1.0).ok());
  EXPECT_EQ(last->in_flight(), 0);
}

TEST(BoundaryHalvesTest, TwoLayerNormedHalvesStartAsTheIdentityPathAndLearn) {
  CompressionOptions compression = Fp32Boundary(CompressionKind::kResbm, 8);
  compression.encoder_norm = true;
  compression.halves_hidden = 16;
  auto sender = Runner(compression, 0);
  auto receiver = Runner(compression, 1);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, p] : sender->Parameters()) shapes[name] = p.sizes().vec();
  for (const auto& [name, p] : receiver->Parameters()) shapes[name] = p.sizes().vec();
  EXPECT_EQ(shapes.at("encoder.norm.weight"), (std::vector<int64_t>{32}));
  EXPECT_EQ(shapes.at("encoder.E.fc1.weight"), (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(shapes.at("encoder.E.fc2.weight"), (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(shapes.at("decoder.D.fc1.weight"), (std::vector<int64_t>{16, 4}));
  EXPECT_EQ(shapes.at("decoder.D.fc2.weight"), (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(shapes.count("encoder.E.weight"), 0u);

  // init_std 0: the second layers start at zero, so the boundary is the identity path
  // (z = h[:k], h' = pad(z)), while the first layers are random so a gradient reaches both.
  const ModelOptions model = TinyModel();
  BoundaryEncoder encoder(model.d_model, model.norm_eps, compression);
  BoundaryDecoder decoder(model.d_model, compression);
  torch::manual_seed(1);
  auto h = torch::randn({2, 3, model.d_model});
  EXPECT_TRUE(torch::equal(encoder->forward(h), h.slice(-1, 0, 4)));
  auto z = torch::randn({2, 3, 4});
  EXPECT_TRUE(torch::equal(decoder->forward(z).slice(-1, 0, 4), z));
  for (const auto& [name, p] : sender->Parameters()) {
    if (name == "encoder.E.fc1.weight") EXPECT_GT(p.abs().sum().item<double>(), 0.0);
    if (name == "encoder.E.fc2.weight") EXPECT_EQ(p.abs().sum().item<double>(), 0.0);
  }
  auto ids = torch::randint(64, {2, 8}, torch::kInt64);
  auto out = sender->Forward(0, ids);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE(sender->Backward(0, torch::ones({2, 8, 4})).ok());
  for (const auto& [name, grad] : sender->Gradients()) {
    if (name == "encoder.E.fc2.weight") EXPECT_GT(grad.abs().sum().item<double>(), 0.0);
  }
}

TEST(BoundaryHalvesTest, TheirOwnLearningRateScalesOnlyTheirMuonUpdates) {
  auto updates = [](double scale) {
    torch::manual_seed(4);
    NamedTensors params = {{"encoder.E.weight", torch::randn({4, 32})},
                           {"decoder.D.fc1.weight", torch::randn({16, 4})},
                           {"layer0.attn.wq.weight", torch::randn({32, 32})}};
    std::map<std::string, torch::Tensor> before;
    for (auto& [name, p] : params) {
      p.set_requires_grad(true);
      p.mutable_grad() = torch::randn(p.sizes());
      before[name] = p.detach().clone();
    }
    OptimizerOptions options;
    options.halves_lr_scale = scale;
    StageOptimizer optimizer(params, options);
    optimizer.Step(0, 1.0);
    std::map<std::string, torch::Tensor> delta;
    for (auto& [name, p] : params) delta[name] = p.detach() - before[name];
    // Both Muon groups keep their state under the parameter's name.
    EXPECT_EQ(optimizer.State().size(), 3u);
    return delta;
  };
  auto plain = updates(1.0), scaled = updates(2.5);
  for (const char* half : {"encoder.E.weight", "decoder.D.fc1.weight"}) {
    // (Differences of updated and original weights: float32 rounding of |p| ~ 1.)
    EXPECT_TRUE(torch::allclose(scaled[half], 2.5 * plain[half], 1e-4, 1e-6)) << half;
  }
  EXPECT_TRUE(torch::equal(scaled["layer0.attn.wq.weight"], plain["layer0.attn.wq.weight"]));
}

TEST(TokenIdBytesTest, CountsVarintsAsProtobufPacksThem) {
  EXPECT_EQ(TokenIdBytes::VarintSize(0), 1);
  EXPECT_EQ(TokenIdBytes::VarintSize(127), 1);
  EXPECT_EQ(TokenIdBytes::VarintSize(128), 2);
  EXPECT_EQ(TokenIdBytes::VarintSize(16383), 2);
  EXPECT_EQ(TokenIdBytes::VarintSize(16384), 3);
  // 3 ids of 1, 2 and 1 bytes: TokenIds = tag + length + 4; the element = tag + length + 6.
  const int64_t ids[] = {5, 300, 0};
  EXPECT_EQ(TokenIdBytes::InRequest(ids, 3), 1 + 1 + (1 + 1 + 4));
  EXPECT_EQ(TokenIdBytes::InRequest(ids, 0), 2);  // An empty TokenIds still takes its slot.
}

}  // namespace
}  // namespace resbm
