#include "common/model/stage.h"

#include <torch/torch.h>

#include <cmath>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/hash.h"
#include "common/model/autocast_guard.h"

namespace resbm {
StageImpl::StageImpl(const ModelOptions& model, const CompressionOptions& compression,
                     const StageSpec& spec)
    : model_(model), compression_(compression), spec_(spec) {
  if (spec_.is_first()) {
    embed_ = register_module("embed", torch::nn::Embedding(model.vocab_size, model.d_model));
  } else {
    decoder_ = register_module("decoder", BoundaryDecoder(model.d_model, compression));
    if (compression.token_channel != TokenChannelKind::kNone) {
      token_channel_ =
          register_module("token_channel", TokenChannel(model, compression, spec_.index));
    }
  }
  for (int64_t i = 0; i < spec_.num_layers; ++i) {
    blocks_.push_back(
        register_module(absl::StrCat("layer", spec_.first_layer + i), TransformerBlock(model)));
  }
  if (spec_.is_last()) {
    final_norm_ = register_module("final_norm", RmsNorm(model.d_model, model.norm_eps));
    head_ = register_module(
        "head",
        torch::nn::Linear(torch::nn::LinearOptions(model.d_model, model.vocab_size).bias(false)));
  } else {
    encoder_ =
        register_module("encoder", BoundaryEncoder(model.d_model, model.norm_eps, compression));
  }
}

torch::Tensor StageImpl::Residual(const torch::Tensor& input, const torch::Tensor& tokens) {
  if (spec_.is_first()) return embed_->forward(input);  // (B, T, d)
  torch::Tensor h = decoder_->forward(input);           // (B, T, d)
  if (token_channel_) h = h + token_channel_->forward(tokens);
  return h;
}

torch::Tensor StageImpl::forward(const torch::Tensor& input, const torch::Tensor& tokens) {
  torch::Tensor h = Residual(input, tokens);  // (B, T, d)
  {
    // The blocks' matrix products at the compute dtype; the residual stream stays fp32
    // (fp32 + bf16 promotes), and so do the boundary halves and the head.
    AutocastGuard autocast(h.device().type(), model_.compute_dtype);
    for (auto& block : blocks_) h = block->forward(h);  // (B, T, d)
  }
  if (spec_.is_last()) {
    return head_->forward(final_norm_->forward(h));  // (B, T, V)
  }
  return encoder_->forward(h);  // (B, T, k)
}

torch::Tensor StageImpl::ForwardCached(const torch::Tensor& input, const torch::Tensor& tokens,
                                       KvCache* cache) {
  torch::Tensor h = Residual(input, tokens);  // (B, t, d)
  cache->keys.resize(blocks_.size());
  cache->values.resize(blocks_.size());
  {
    AutocastGuard autocast(h.device().type(), model_.compute_dtype);
    for (size_t i = 0; i < blocks_.size(); ++i) {
      h = blocks_[i]->ForwardCached(h, cache->length, &cache->keys[i], &cache->values[i]);
    }
  }
  cache->length += input.size(1);
  if (spec_.is_last()) {
    return head_->forward(final_norm_->forward(h));  // (B, t, V)
  }
  return encoder_->forward(h);  // (B, t, k)
}

torch::Tensor StageImpl::Loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  const int64_t vocab = logits.size(-1);
  return torch::nn::functional::cross_entropy(logits.reshape({-1, vocab}),  // (B*T, V)
                                              targets.reshape({-1}));       // -> ()
}

int64_t StageImpl::input_width() const {
  return spec_.is_first() ? 0 : compression_.WireWidth(model_.d_model);
}

int64_t StageImpl::output_width() const {
  return spec_.is_last() ? model_.vocab_size : compression_.WireWidth(model_.d_model);
}

std::string StageImpl::GlobalName(const std::string& local_name) const {
  // Boundary halves are named after the boundary they belong to: boundary s joins stage s and
  // stage s + 1, so stage s holds its encoder and stage s + 1 its decoder.
  if (absl::StartsWith(local_name, "encoder.")) {
    return absl::StrCat("boundary", spec_.index, ".", local_name);
  }
  if (absl::StartsWith(local_name, "decoder.")) {
    return absl::StrCat("boundary", spec_.index - 1, ".", local_name);
  }
  if (absl::StartsWith(local_name, "token_channel.")) {
    return absl::StrCat("stage", spec_.index, ".", local_name);
  }
  return local_name;
}

double StageImpl::InitStd(const std::string& name) const {
  if (absl::StartsWith(name, "encoder.") || absl::StartsWith(name, "decoder.")) {
    // A two-layer half starts as zero through its zero second layer; its first layer must
    // be random, or no gradient ever reaches either.
    return absl::EndsWith(name, ".fc1.weight") ? model_.init_std : compression_.init_std;
  }
  if (name == "token_channel.proj.weight") {
    // table (std init_std) x proj: rows of the product start with std init_std, as a
    // learned table's do.
    return 1.0 / std::sqrt(static_cast<double>(compression_.token_channel_rank));
  }
  if (absl::EndsWith(name, "attn.wo.weight") || absl::EndsWith(name, "mlp.w2.weight")) {
    return model_.init_std / std::sqrt(2.0 * model_.n_layers);
  }
  return model_.init_std;
}

void StageImpl::InitParameters(uint64_t seed) {
  torch::NoGradGuard no_grad;
  for (auto& item : named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    torch::Tensor& param = item.value();
    const std::string global = GlobalName(name);
    if (absl::StrContains(name, "norm")) {
      param.fill_(1.0);
      continue;
    }
    const double std = InitStd(name);
    if (std == 0.0) {
      param.zero_();
      continue;
    }
    auto generator =
        at::detail::createCPUGenerator(SplitMix64(seed ^ Fnv1a64(global.data(), global.size())));
    auto values = torch::empty(param.sizes(), torch::kFloat32);
    values.normal_(0.0, std, generator);
    param.copy_(values);
  }
}

}  // namespace resbm
