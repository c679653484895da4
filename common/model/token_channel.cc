#include "common/model/token_channel.h"

#include <torch/torch.h>

#include <vector>

#include "common/model/fixed_token_table.h"

namespace resbm {

TokenChannelImpl::TokenChannelImpl(const ModelOptions& model, const CompressionOptions& compression,
                                   int64_t stage) {
  const int64_t v = model.vocab_size, d = model.d_model, m = compression.token_channel_rank;
  switch (compression.token_channel) {
    case TokenChannelKind::kNone:
      break;
    case TokenChannelKind::kLearned:
      table_ = register_module("table", torch::nn::Embedding(v, d));
      break;
    case TokenChannelKind::kFactorized:
      table_ = register_module("table", torch::nn::Embedding(v, m));
      proj_ =
          register_module("proj", torch::nn::Linear(torch::nn::LinearOptions(m, d).bias(false)));
      break;
    case TokenChannelKind::kFixed: {
      std::vector<float> values = FixedTokenTable::Values(stage, v, d, model.init_std);
      // A buffer, not a parameter: it moves with the module but has no gradient and is not
      // part of named_parameters(), so no optimizer or checkpoint sees it.
      fixed_ = register_buffer("table", torch::tensor(values).reshape({v, d}));
      break;
    }
  }
}

torch::Tensor TokenChannelImpl::forward(const torch::Tensor& tokens) {
  if (fixed_.defined()) return torch::nn::functional::embedding(tokens, fixed_);  // (B, T, d)
  torch::Tensor t = table_->forward(tokens);  // (B, T, d) or (B, T, m)
  return proj_ ? proj_->forward(t) : t;       // (B, T, d)
}

}  // namespace resbm
