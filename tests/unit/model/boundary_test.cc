// The boundary halves: identity at initialisation, exact gradients (float64 finite
// differences), and the shapes of every compression kind.
#include <torch/torch.h>

#include "common/model/boundary_decoder.h"
#include "common/model/boundary_encoder.h"
#include "gtest/gtest.h"

namespace resbm {
namespace {

CompressionOptions Kind(CompressionKind kind, int64_t ratio) {
  CompressionOptions options;
  options.kind = kind;
  options.ratio = ratio;
  options.wire_dtype = WireDtype::kFp32;
  return options;
}

TEST(BoundaryTest, ResbmStartsAsRectangularIdentity) {
  torch::manual_seed(1);
  constexpr int64_t d = 64;
  auto options = Kind(CompressionKind::kResbm, 16);  // k = 4
  BoundaryEncoder encoder(d, /*norm_eps=*/1e-5, options);
  BoundaryDecoder decoder(d, options);
  auto h = torch::randn({2, 5, d});  // (B, T, d)
  auto z = encoder->forward(h);      // (B, T, k)
  ASSERT_EQ(z.sizes(), (std::vector<int64_t>{2, 5, 4}));
  EXPECT_TRUE(torch::equal(z, h.slice(-1, 0, 4)));
  auto out = decoder->forward(z);  // (B, T, d)
  EXPECT_TRUE(torch::equal(out.slice(-1, 0, 4), h.slice(-1, 0, 4)));
  EXPECT_EQ(out.slice(-1, 4).abs().max().item<float>(), 0.0f);
}

TEST(BoundaryTest, NoneIsTheIdentity) {
  auto options = Kind(CompressionKind::kNone, 1);
  BoundaryEncoder encoder(32, /*norm_eps=*/1e-5, options);
  BoundaryDecoder decoder(32, options);
  auto h = torch::randn({3, 7, 32});
  EXPECT_TRUE(torch::equal(decoder->forward(encoder->forward(h)), h));
  EXPECT_EQ(encoder->parameters().size(), 0u);
  EXPECT_EQ(decoder->parameters().size(), 0u);
}

TEST(BoundaryTest, EveryKindHasTheDocumentedShapesAndParameters) {
  struct Row {
    CompressionKind kind;
    size_t params_per_half;
  };
  for (const Row& row : {Row{CompressionKind::kResbm, 1}, Row{CompressionKind::kBottleneck, 1},
                         Row{CompressionKind::kTruncate, 0}}) {
    auto options = Kind(row.kind, 8);
    BoundaryEncoder encoder(64, /*norm_eps=*/1e-5, options);
    BoundaryDecoder decoder(64, options);
    auto z = encoder->forward(torch::randn({2, 3, 64}));
    EXPECT_EQ(z.size(-1), 8) << CompressionKindName(row.kind);
    EXPECT_EQ(decoder->forward(z).size(-1), 64) << CompressionKindName(row.kind);
    EXPECT_EQ(encoder->parameters().size(), row.params_per_half);
    EXPECT_EQ(decoder->parameters().size(), row.params_per_half);
  }
}

TEST(BoundaryTest, TruncateKeepsOnlyTheFirstKChannels) {
  auto options = Kind(CompressionKind::kTruncate, 4);
  BoundaryEncoder encoder(16, /*norm_eps=*/1e-5, options);
  BoundaryDecoder decoder(16, options);
  auto h = torch::randn({1, 2, 16});
  auto out = decoder->forward(encoder->forward(h));
  EXPECT_TRUE(torch::equal(out.slice(-1, 0, 4), h.slice(-1, 0, 4)));
  EXPECT_EQ(out.slice(-1, 4).abs().max().item<float>(), 0.0f);
}

// Central finite differences of a scalar loss of the whole boundary, in float64, against
// autograd for E, D and the input h.
TEST(BoundaryTest, GradientsMatchFiniteDifferencesInFloat64) {
  for (CompressionKind kind : {CompressionKind::kResbm, CompressionKind::kBottleneck}) {
    torch::manual_seed(3);
    constexpr int64_t d = 12;
    auto options = Kind(kind, 4);  // k = 3
    BoundaryEncoder encoder(d, /*norm_eps=*/1e-5, options);
    BoundaryDecoder decoder(d, options);
    encoder->to(torch::kFloat64);
    decoder->to(torch::kFloat64);
    {
      torch::NoGradGuard no_grad;
      encoder->weight().normal_(0, 0.3);
      decoder->weight().normal_(0, 0.3);
    }
    auto h = torch::randn({2, 3, d}, torch::kFloat64).requires_grad_(true);
    auto probe = torch::randn({2, 3, d}, torch::kFloat64);
    auto loss_fn = [&] { return (decoder->forward(encoder->forward(h)).tanh() * probe).sum(); };
    loss_fn().backward();

    std::vector<std::pair<std::string, torch::Tensor>> checks = {
        {"E", encoder->weight()}, {"D", decoder->weight()}, {"h", h}};
    for (auto& [name, tensor] : checks) {
      auto analytic = tensor.grad().clone();
      auto flat = tensor.detach().view({-1});
      double max_error = 0.0;
      constexpr double eps = 1e-6;
      for (int64_t i = 0; i < flat.numel(); ++i) {
        torch::NoGradGuard no_grad;
        const double saved = flat[i].item<double>();
        flat[i] = saved + eps;
        const double plus = loss_fn().item<double>();
        flat[i] = saved - eps;
        const double minus = loss_fn().item<double>();
        flat[i] = saved;
        const double numeric = (plus - minus) / (2 * eps);
        max_error = std::max(max_error, std::abs(numeric - analytic.view({-1})[i].item<double>()));
      }
      EXPECT_LT(max_error, 1e-7) << CompressionKindName(kind) << " grad of " << name
                                 << ": max |numeric - autograd| = " << max_error;
    }
  }
}

// Backward through the boundary sends g_z = g[:k] + J_D^T g (k numbers per token) and the
// sender continues with pad(g_z) + J_E^T g_z, as DESIGN.md states.
TEST(BoundaryTest, BackwardMatchesTheClosedForm) {
  torch::manual_seed(4);
  constexpr int64_t d = 8;
  auto options = Kind(CompressionKind::kResbm, 4);  // k = 2
  BoundaryEncoder encoder(d, /*norm_eps=*/1e-5, options);
  BoundaryDecoder decoder(d, options);
  {
    torch::NoGradGuard no_grad;
    encoder->weight().normal_();
    decoder->weight().normal_();
  }
  auto h = torch::randn({5, d}, torch::kFloat64).to(torch::kFloat32).requires_grad_(true);
  auto z = encoder->forward(h);
  auto g = torch::randn({5, d});
  auto z_leaf = z.detach().requires_grad_(true);
  decoder->forward(z_leaf).backward(g);
  auto g_z = z_leaf.grad();  // (N, k)
  auto expected_gz = g.slice(-1, 0, 2) + torch::matmul(g, decoder->weight());
  EXPECT_TRUE(torch::allclose(g_z, expected_gz, 1e-5, 1e-6));
  z.backward(g_z);
  auto expected_gh =
      torch::nn::functional::pad(g_z, torch::nn::functional::PadFuncOptions({0, d - 2})) +
      torch::matmul(g_z, encoder->weight());
  EXPECT_TRUE(torch::allclose(h.grad(), expected_gh, 1e-5, 1e-6));
}

}  // namespace
}  // namespace resbm
