// Generator: the key/value cache gives the logits of the full forward, token by token;
// greedy generation with and without the cache agrees; sampling is seeded; bad prompts are
// refused.
#include "common/model/generator.h"

#include <torch/torch.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/tiny_model.h"

namespace resbm {
namespace {

using ::resbm::testing::Fp32Boundary;
using ::resbm::testing::TinyModel;

std::unique_ptr<Generator> RandomGenerator(
    WireDtype wire, int64_t stages, TokenChannelKind token_channel = TokenChannelKind::kNone) {
  GeneratorOptions options;
  options.model = TinyModel();
  options.compression = Fp32Boundary(CompressionKind::kResbm, 4);
  options.compression.wire_dtype = wire;
  options.compression.token_channel = token_channel;
  options.plan = *PlanStages(options.model.n_layers, stages, {});
  auto generator = Generator::Create(options);
  EXPECT_TRUE(generator.ok()) << generator.status();
  torch::manual_seed(5);
  torch::NoGradGuard no_grad;
  for (int64_t s = 0; s < stages; ++s) {
    for (auto& [name, param] : (*generator)->StageParameters(s)) {
      at::Tensor target = param;
      target.copy_(torch::randn(param.sizes()) * 0.2);
    }
  }
  return std::move(*generator);
}

std::vector<int64_t> Prompt(int64_t n) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back((i * 37 + 11) % 64);
  return ids;
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

TEST(GeneratorTest, CachedLogitsEqualTheFullForward) {
  for (TokenChannelKind channel :
       {TokenChannelKind::kNone, TokenChannelKind::kLearned, TokenChannelKind::kFixed}) {
    for (int64_t stages : {1, 2, 3}) {
      auto generator = RandomGenerator(WireDtype::kFp32, stages, channel);
      const auto ids = Prompt(16);  // The whole context.
      auto full = generator->Logits(ids);
      auto incremental = generator->LogitsIncremental(ids);
      ASSERT_TRUE(full.ok()) << full.status();
      ASSERT_TRUE(incremental.ok()) << incremental.status();
      ASSERT_EQ(full->sizes(), incremental->sizes());
      EXPECT_LT(MaxAbsDiff(*full, *incremental), 1e-5)
          << stages << " stages, token channel " << TokenChannelName(channel);
    }
  }
}

TEST(GeneratorTest, GreedyGenerationIsTheSameWithAndWithoutTheCache) {
  for (WireDtype wire : {WireDtype::kFp32, WireDtype::kBf16, WireDtype::kInt8}) {
    auto generator = RandomGenerator(wire, 2);
    SamplingOptions greedy;
    greedy.temperature = 0.0;
    greedy.max_tokens = 10;  // 4 + 10 <= seq_len 16: within one window.
    auto cached = generator->Generate(Prompt(4), greedy);
    greedy.use_cache = false;
    auto uncached = generator->Generate(Prompt(4), greedy);
    ASSERT_TRUE(cached.ok()) << cached.status();
    ASSERT_TRUE(uncached.ok()) << uncached.status();
    EXPECT_EQ(*cached, *uncached) << WireDtypeName(wire);
    EXPECT_EQ(cached->size(), 14u);
  }
}

TEST(GeneratorTest, SamplingIsSeededAndSlidesPastTheContext) {
  auto generator = RandomGenerator(WireDtype::kBf16, 2);
  SamplingOptions sampling;
  sampling.temperature = 1.0;
  sampling.top_k = 8;
  sampling.max_tokens = 40;  // Past seq_len 16: the window slides.
  GenerationStats stats;
  auto a = generator->Generate(Prompt(3), sampling, &stats);
  auto b = generator->Generate(Prompt(3), sampling);
  sampling.seed = 2;
  auto c = generator->Generate(Prompt(3), sampling);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  EXPECT_EQ(a->size(), 43u);
  EXPECT_GT(stats.window_rebuilds, 0);
  for (int64_t id : *a) EXPECT_TRUE(id >= 0 && id < 64);
}

TEST(GeneratorTest, RefusesBadPrompts) {
  auto generator = RandomGenerator(WireDtype::kFp32, 2);
  EXPECT_EQ(generator->Generate({}, SamplingOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto out_of_range = generator->Generate({3, 64}, SamplingOptions());
  EXPECT_THAT(std::string(out_of_range.status().message()), ::testing::HasSubstr("prompt[1]"));
  EXPECT_FALSE(generator->Logits(Prompt(17)).ok());  // Longer than seq_len.
}

}  // namespace
}  // namespace resbm
