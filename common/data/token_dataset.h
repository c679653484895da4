// TokenDataset: the train and validation token streams of one run plus their vocabulary size,
// loaded from a byte corpus or from llm.c token shards. Owns both token vectors; move-only so a
// multi-gigabyte corpus is never copied by accident. Immutable after construction, so const
// methods are safe to call from several threads.
#ifndef RESBM_COMMON_DATA_TOKEN_DATASET_H_
#define RESBM_COMMON_DATA_TOKEN_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace resbm {

class TokenDataset {
 public:
  // Reads `paths` with ReadByteCorpus (vocabulary 256). The last floor(val_fraction * bytes)
  // bytes are the validation split, the rest train. InvalidArgument unless val_fraction is in
  // (0, 0.5] or if the corpus is too small for a non-empty validation split.
  static absl::StatusOr<TokenDataset> FromByteCorpus(const std::vector<std::string>& paths,
                                                     double val_fraction);

  // Concatenates the shards of each split in the order given. InvalidArgument unless both path
  // lists are non-empty and 1 <= vocab_size <= 65536, or if any token is >= vocab_size (the
  // message names the file, the token index in it and the value).
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

  const std::vector<uint16_t>& train() const { return train_; }
  const std::vector<uint16_t>& val() const { return val_; }
  int64_t vocab_size() const { return vocab_size_; }

  // OK if both splits hold at least seq_len + 2 tokens, which BatchSampler needs to draw a
  // window of seq_len inputs plus one target from at least two offsets. FailedPrecondition
  // otherwise, naming the split, its size and the need; InvalidArgument if seq_len < 1.
  absl::Status CheckFits(int64_t seq_len) const;

  // Entropy in nats of the unigram (token frequency) distribution of the train split: the
  // cross-entropy a model that ignores context reaches, so a trained model must beat it.
  // 0 for an empty split.
  double UnigramEntropyNats() const;

 private:
  TokenDataset(std::vector<uint16_t> train, std::vector<uint16_t> val, int64_t vocab_size);

  std::vector<uint16_t> train_;
  std::vector<uint16_t> val_;
  int64_t vocab_size_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_DATA_TOKEN_DATASET_H_
