// TokenDataset: the train and validation token streams of one run plus their vocabulary size,
// loaded from a byte corpus (held in memory) or from llm.c token shards (left on disk and read
// on demand, so shards far larger than RAM open in milliseconds). Owns both streams;
// move-only. Immutable after construction, so const methods are safe to call from several
// threads.
#ifndef RESBM_COMMON_DATA_TOKEN_DATASET_H_
#define RESBM_COMMON_DATA_TOKEN_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/token_stream.h"

namespace resbm {

// The shards of a dataset as a job first read them (empty for data held in memory).
struct DatasetFingerprint {
  std::vector<ShardFingerprint> train;
  std::vector<ShardFingerprint> val;

  bool empty() const { return train.empty() && val.empty(); }
};

class TokenDataset {
 public:
  // Reads `paths` with ReadByteCorpus (vocabulary 256). The last floor(val_fraction * bytes)
  // bytes are the validation split, the rest train. InvalidArgument unless val_fraction is in
  // (0, 0.5] or if the corpus is too small for a non-empty validation split.
  static absl::StatusOr<TokenDataset> FromByteCorpus(const std::vector<std::string>& paths,
                                                     double val_fraction);

  // Opens the shards of each split in the order given (TokenStream::OpenShards: the headers
  // and sampled blocks are read now, every other token when it is sampled). InvalidArgument
  // unless both path lists are non-empty and 1 <= vocab_size <= 65536, or if a token read is
  // >= vocab_size (the message names the file, the token index in it and the value).
  static absl::StatusOr<TokenDataset> FromTokenShards(const std::vector<std::string>& train_paths,
                                                      const std::vector<std::string>& val_paths,
                                                      int64_t vocab_size);

  // For tests: takes the splits as given, without validation.
  static TokenDataset FromTokens(std::vector<uint16_t> train, std::vector<uint16_t> val,
                                 int64_t vocab_size);

  TokenDataset(TokenDataset&&) = default;
  TokenDataset& operator=(TokenDataset&&) = default;
  TokenDataset(const TokenDataset&) = delete;
  TokenDataset& operator=(const TokenDataset&) = delete;

  const TokenStream& train() const { return train_; }
  const TokenStream& val() const { return val_; }
  int64_t vocab_size() const { return vocab_size_; }

  // OK if both splits hold at least seq_len + 2 tokens, which BatchSampler needs to draw a
  // window of seq_len inputs plus one target from at least two offsets. FailedPrecondition
  // otherwise, naming the split, its size and the need; InvalidArgument if seq_len < 1.
  absl::Status CheckFits(int64_t seq_len) const;

  // FailedPrecondition if a shard of either split changed since it was opened
  // (TokenStream::CheckUnchanged); always OK for data held in memory.
  absl::Status CheckUnchanged() const;

  // The shards' fingerprints taken at open.
  DatasetFingerprint fingerprint() const;

  // FailedPrecondition unless the shards opened are the ones `recorded` (by an earlier run of
  // the same job) describes, naming the first that differs.
  absl::Status CheckSameAs(const DatasetFingerprint& recorded) const;

  // Entropy in nats of the unigram (token frequency) distribution of the first
  // kUnigramEntropyTokens train tokens (all of them in a smaller split): the cross-entropy a
  // model that ignores context reaches, so a trained model must beat it. 0 for an empty split.
  absl::StatusOr<double> UnigramEntropyNats() const;
  static constexpr int64_t kUnigramEntropyTokens = int64_t{1} << 24;

 private:
  TokenDataset(TokenStream train, TokenStream val, int64_t vocab_size);

  TokenStream train_;
  TokenStream val_;
  int64_t vocab_size_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_DATA_TOKEN_DATASET_H_
