// Plain option structs for the model core: the shapes of the model, the boundary and the
// optimizers. The proto config (protos/resbm/v1/config.proto) maps onto these in
// common/config; the model core itself needs neither protobuf nor gRPC. Value types,
// thread-compatible.
#ifndef RESBM_COMMON_MODEL_MODEL_OPTIONS_H_
#define RESBM_COMMON_MODEL_MODEL_OPTIONS_H_

#include <cstdint>
#include <string>

namespace resbm {

// What the transformer blocks compute in (autocast); everything else stays fp32.
enum class ComputeDtype { kFp32, kBf16 };

std::string ComputeDtypeName(ComputeDtype dtype);

struct ModelOptions {
  int64_t vocab_size = 256;
  int64_t d_model = 256;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t mlp_hidden = 768;
  int64_t seq_len = 128;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  double init_std = 0.02;
  ComputeDtype compute_dtype = ComputeDtype::kFp32;
};

enum class CompressionKind { kNone, kResbm, kBottleneck, kTruncate };
enum class WireDtype { kFp32, kBf16, kFp16, kInt8 };
// What a stage after the first adds to its decoded residual from the token ids.
enum class TokenChannelKind { kNone, kLearned, kFixed, kFactorized };

std::string CompressionKindName(CompressionKind kind);
std::string WireDtypeName(WireDtype dtype);
std::string TokenChannelName(TokenChannelKind channel);

struct CompressionOptions {
  CompressionKind kind = CompressionKind::kResbm;
  // r; k = d_model / ratio. Must be 1 for kNone.
  int64_t ratio = 128;
  WireDtype wire_dtype = WireDtype::kBf16;
  // Std of E and D at initialisation; 0 means zero weights (pure rectangular identity).
  double init_std = 0.0;
  TokenChannelKind token_channel = TokenChannelKind::kNone;
  // m of a kFactorized table (V x m, then m x d).
  int64_t token_channel_rank = 32;
  // E reads RMSNorm(h) instead of h.
  bool encoder_norm = false;
  // > 0: E and D are d -> m -> k and k -> m -> d with a SiLU between; 0: linear.
  int64_t halves_hidden = 0;

  // Numbers per token crossing the boundary for a residual width of d_model.
  int64_t WireWidth(int64_t d_model) const { return d_model / ratio; }
};

struct MuonOptions {
  double lr = 0.02;
  double momentum = 0.95;
  bool nesterov = true;
  int ns_steps = 5;
  double weight_decay = 0.0;
};

struct AdamWOptions {
  double lr = 3e-3;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

enum class LrDecay { kCosine, kLinear, kConstant };

struct LrScheduleOptions {
  int64_t warmup_steps = 0;
  LrDecay decay = LrDecay::kCosine;
  double min_lr_ratio = 0.1;
  int64_t total_steps = 1;
};

// The outer optimizer of replicas that synchronise every `steps` local steps.
struct OuterOptions {
  int64_t steps = 0;
  double lr = 0.7;
  double momentum = 0.9;
  WireDtype dtype = WireDtype::kBf16;
};

struct OptimizerOptions {
  // false: AdamW for every parameter (the baseline); true: Muon for 2-D hidden matrices.
  bool use_muon = true;
  MuonOptions muon;
  AdamWOptions adamw;
  LrScheduleOptions schedule;
  // Global grad-norm clip threshold; 0 disables.
  double grad_clip = 1.0;
  // Multiplies muon.lr for the boundary halves' weights (E and D).
  double halves_lr_scale = 1.0;
  // DiLoCo across a stage's replicas (OuterOptimizerConfig); steps 0: none.
  OuterOptions outer;
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_MODEL_OPTIONS_H_
