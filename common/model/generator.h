// Generator: samples from a trained model in one process: every stage of the split model,
// chained through the same boundary halves and wire rounding as in training (WireCodec
// on every z), with a key/value cache per stage so each new token costs one position of
// compute. Greedy or temperature sampling with top-k, seeded. The caller loads the weights
// (StageParameters, shared storage). Owns its stages; not thread-safe.
//
// Context: positions run up to model.seq_len (the rotary tables the model was trained
// with); when a sequence outgrows it, the cache is rebuilt from its last seq_len / 2 tokens
// (a sliding window, recomputed once every seq_len / 2 tokens).
#ifndef RESBM_COMMON_MODEL_GENERATOR_H_
#define RESBM_COMMON_MODEL_GENERATOR_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model_options.h"
#include "common/model/named_tensors.h"
#include "common/model/stage_plan.h"

namespace resbm {

class StageImpl;

struct GeneratorOptions {
  ModelOptions model;
  CompressionOptions compression;
  std::vector<StageSpec> plan;
  std::string device = "cpu";
};

struct SamplingOptions {
  int64_t max_tokens = 200;
  // 0: greedy (argmax); otherwise logits / temperature are sampled.
  double temperature = 0.8;
  // Sample among the k likeliest tokens; 0: all of them.
  int64_t top_k = 40;
  uint64_t seed = 1;
  // false: recompute the whole window for every token (the reference the cache must match).
  bool use_cache = true;
};

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t new_tokens = 0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;  // Every token after the prompt's.
  int64_t window_rebuilds = 0;
};

class Generator {
 public:
  static absl::StatusOr<std::unique_ptr<Generator>> Create(const GeneratorOptions& options);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  int64_t num_stages() const { return static_cast<int64_t>(stages_.size()); }
  const StageSpec& spec(int64_t stage) const { return options_.plan[stage]; }
  // Stage `stage`'s parameters by local name (shared storage: copy weights into them).
  NamedTensors StageParameters(int64_t stage) const;

  // Logits (1, T, V) of every position of `ids` (1 <= T <= seq_len), without a cache: what
  // training's forward computes.
  absl::StatusOr<at::Tensor> Logits(const std::vector<int64_t>& ids);
  // Logits (1, T, V) of the same positions fed one token at a time through the cache.
  absl::StatusOr<at::Tensor> LogitsIncremental(const std::vector<int64_t>& ids);

  // The prompt (>= 1 token, ids < vocab) followed by up to max_tokens sampled ones.
  absl::StatusOr<std::vector<int64_t>> Generate(const std::vector<int64_t>& prompt,
                                                const SamplingOptions& sampling,
                                                GenerationStats* stats = nullptr);

 private:
  struct Caches;
  explicit Generator(const GeneratorOptions& options);
  absl::Status CheckIds(const std::vector<int64_t>& ids, const char* what) const;
  // CheckIds, and at most seq_len of them.
  absl::Status CheckWindow(const std::vector<int64_t>& ids) const;
  // Runs `ids` (1, t) through every stage, with the caches when given; -> logits (1, t, V).
  // Call inside the LibTorch seam.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& ids, Caches* caches);

  GeneratorOptions options_;
  std::vector<std::shared_ptr<StageImpl>> stages_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_GENERATOR_H_
