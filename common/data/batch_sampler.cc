#include "common/data/batch_sampler.h"

#include <cstdio>
#include <cstdlib>

#include "common/base/hash.h"

namespace resbm {
namespace {

// Aborts on a broken precondition: these are caller bugs, never user input (the trainer checks
// the dataset with TokenDataset::CheckFits before building a sampler).
#define RESBM_SAMPLER_CHECK(cond)                                                               \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      std::fprintf(stderr, "%s:%d: BatchSampler precondition failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                                      \
      std::abort();                                                                             \
    }                                                                                           \
  } while (false)

}  // namespace

BatchSampler::BatchSampler(const TokenStream* tokens, int64_t seq_len, uint64_t seed)
    : tokens_(tokens), seq_len_(seq_len), seed_(seed), num_offsets_(0) {
  RESBM_SAMPLER_CHECK(tokens != nullptr);
  RESBM_SAMPLER_CHECK(seq_len >= 1);
  RESBM_SAMPLER_CHECK(tokens->size() >= seq_len + 2);
  num_offsets_ = static_cast<uint64_t>(tokens->size()) - static_cast<uint64_t>(seq_len) - 1;
}

uint64_t BatchSampler::RowHash(uint64_t seed, int64_t step, int64_t row) {
  uint64_t h = SplitMix64(seed);
  h = SplitMix64(h ^ static_cast<uint64_t>(step));
  return SplitMix64(h ^ static_cast<uint64_t>(row));
}

int64_t BatchSampler::RowOffset(int64_t step, int64_t row) const {
  // The modulo bias is below num_offsets / 2^64: negligible for any real corpus.
  return static_cast<int64_t>(RowHash(seed_, step, row) % num_offsets_);
}

absl::Status BatchSampler::Sample(int64_t step, int64_t row_begin, int64_t rows,
                                  std::vector<int64_t>* inputs,
                                  std::vector<int64_t>* targets) const {
  RESBM_SAMPLER_CHECK(step >= 0);
  RESBM_SAMPLER_CHECK(row_begin >= 0);
  RESBM_SAMPLER_CHECK(rows >= 0);
  RESBM_SAMPLER_CHECK(inputs != nullptr && targets != nullptr);
  const size_t n = static_cast<size_t>(rows * seq_len_);
  inputs->resize(n);
  targets->resize(n);
  std::vector<uint16_t> window(static_cast<size_t>(seq_len_ + 1));  // Inputs plus one target.
  for (int64_t i = 0; i < rows; ++i) {
    absl::Status read = tokens_->Read(RowOffset(step, row_begin + i), seq_len_ + 1, window.data());
    if (!read.ok()) return read;
    const size_t base = static_cast<size_t>(i * seq_len_);
    for (int64_t t = 0; t < seq_len_; ++t) {
      (*inputs)[base + t] = window[t];
      (*targets)[base + t] = window[t + 1];
    }
  }
  return absl::OkStatus();
}

#undef RESBM_SAMPLER_CHECK

}  // namespace resbm
