// BatchSampler: deterministic, stateless sampling of (input, target) windows from a token
// stream. Row r of step s always starts at the same offset, a hash of (seed, s, r), so the
// cursor to resume a run is just the step number, and a microbatch slice of rows equals the
// same rows of the full batch. Does not own the tokens. Thread-safe: Sample() is const and
// keeps no state (TokenStream reads are thread-safe).
#ifndef RESBM_COMMON_DATA_BATCH_SAMPLER_H_
#define RESBM_COMMON_DATA_BATCH_SAMPLER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/data/token_stream.h"

namespace resbm {

class BatchSampler {
 public:
  // `tokens` is not owned and must outlive the sampler, unchanged. Requires seq_len >= 1 and
  // tokens->size() >= seq_len + 2 (check with TokenDataset::CheckFits first); aborts otherwise,
  // as that is a bug in the caller, not bad input.
  BatchSampler(const TokenStream* tokens, int64_t seq_len, uint64_t seed);

  BatchSampler(const BatchSampler&) = default;
  BatchSampler& operator=(const BatchSampler&) = default;

  // Fills rows [row_begin, row_begin + rows) of step `step`: `inputs` and `targets` are resized
  // to rows * seq_len, row-major (row i of the slice at [i * seq_len, (i + 1) * seq_len)), and
  // targets are the inputs shifted by one token. Requires step >= 0, row_begin >= 0, rows >= 0
  // and non-null outputs; aborts otherwise. Errors are the stream's (a shard that shrank or
  // holds a token outside the vocabulary).
  absl::Status Sample(int64_t step, int64_t row_begin, int64_t rows, std::vector<int64_t>* inputs,
                      std::vector<int64_t>* targets) const;

  // The first token of row `row` of step `step`, in [0, tokens->size() - seq_len - 1).
  int64_t RowOffset(int64_t step, int64_t row) const;

  // A splitmix64-style mix of (seed, step, row); each value is folded in through a full
  // splitmix64 finalizer, so the order of the three matters.
  static uint64_t RowHash(uint64_t seed, int64_t step, int64_t row);

  int64_t seq_len() const { return seq_len_; }
  uint64_t seed() const { return seed_; }

 private:
  const TokenStream* tokens_;  // Not owned.
  int64_t seq_len_;
  uint64_t seed_;
  uint64_t num_offsets_;  // tokens_->size() - seq_len_ - 1, at least 1.
};

}  // namespace resbm

#endif  // RESBM_COMMON_DATA_BATCH_SAMPLER_H_
