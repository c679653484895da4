// Stage: one pipeline stage of the decoder as a torch module: a contiguous slice of blocks,
// plus the embedding (stage 0), the final norm and LM head (last stage), the decoder half D
// of the incoming boundary and its token channel (every stage but the first) and the encoder
// half E of the outgoing boundary (every stage but the last). Parameter names carry global
// layer indices ("layer3.attn.wq.weight"), so initialisation from a seed is the same whatever
// the split.
// A torch module; not thread-safe (owned by one executor).
#ifndef RESBM_COMMON_MODEL_STAGE_H_
#define RESBM_COMMON_MODEL_STAGE_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "common/model/boundary_decoder.h"
#include "common/model/boundary_encoder.h"
#include "common/model/model_options.h"
#include "common/model/rms_norm.h"
#include "common/model/stage_plan.h"
#include "common/model/token_channel.h"
#include "common/model/transformer_block.h"

namespace resbm {

// Legend: B batch, T sequence, d model width, k boundary width (d / r), V vocabulary.
class StageImpl : public torch::nn::Module {
 public:
  StageImpl(const ModelOptions& model, const CompressionOptions& compression,
            const StageSpec& spec);

  // First stage: token ids (B, T) int64. Other stages: z (B, T, k) from the previous boundary,
  // and the microbatch's token ids (B, T) int64 where uses_token_ids() (else ignored).
  // Returns z (B, T, k) for the next boundary, or logits (B, T, V) on the last stage.
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& tokens);

  // Inference of the tokens at positions [cache->length, cache->length + t): input (B, t) ids
  // or z (B, t, k) as forward() takes; returns what forward() returns for those positions
  // and extends `cache` (one key and value tensor per block) with them.
  struct KvCache {
    std::vector<torch::Tensor> keys, values;  // [block] (B, H, length, hd)
    int64_t length = 0;
  };
  torch::Tensor ForwardCached(const torch::Tensor& input, const torch::Tensor& tokens,
                              KvCache* cache);

  // Mean next-token cross-entropy. logits: (B, T, V), targets: (B, T) int64 -> scalar.
  static torch::Tensor Loss(const torch::Tensor& logits, const torch::Tensor& targets);

  // Draws every parameter from a generator seeded by (seed, global parameter name): the same
  // values whatever the stage split or device. Weight matrices N(0, init_std) (residual
  // output projections scaled by 1/sqrt(2L)), gains 1, boundary halves N(0,
  // compression.init_std) or zero (the first layer of a two-layer half N(0, init_std)), token
  // tables N(0, init_std) (a factorized table's projection N(0, 1/sqrt(m))).
  void InitParameters(uint64_t seed);

  const StageSpec& spec() const { return spec_; }
  // Width of the tensor forward() takes (0 for token ids) and returns (V on the last stage).
  int64_t input_width() const;
  int64_t output_width() const;
  // Whether forward() needs the token ids besides z: a stage after the first with a token
  // channel.
  bool uses_token_ids() const { return static_cast<bool>(token_channel_); }

 private:
  std::string GlobalName(const std::string& local_name) const;
  // The residual a stage starts from: the embedding, or the decoded boundary plus the token
  // channel. (B, T, d)
  torch::Tensor Residual(const torch::Tensor& input, const torch::Tensor& tokens);
  double InitStd(const std::string& local_name) const;

  ModelOptions model_;
  CompressionOptions compression_;
  StageSpec spec_;
  torch::nn::Embedding embed_{nullptr};
  BoundaryDecoder decoder_{nullptr};
  TokenChannel token_channel_{nullptr};
  std::vector<TransformerBlock> blocks_;
  RmsNorm final_norm_{nullptr};
  torch::nn::Linear head_{nullptr};
  BoundaryEncoder encoder_{nullptr};
};
TORCH_MODULE(Stage);

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_STAGE_H_
