#include "common/data/token_dataset.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/data/byte_corpus.h"
#include "common/data/token_shard.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

constexpr int64_t kByteVocabSize = 256;
constexpr int64_t kMaxShardVocabSize = 65536;  // Shard tokens are uint16.

// Appends every shard in `paths` to `out`, checking each token against `vocab_size`.
absl::Status AppendShards(const std::vector<std::string>& paths, int64_t vocab_size,
                          std::vector<uint16_t>* out) {
  for (const std::string& path : paths) {
    RESBM_ASSIGN_OR_RETURN(std::vector<uint16_t> tokens, ReadTokenShard(path));
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] >= vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("token shard ", path, ": token ", i,
                                                       " has value ", tokens[i],
                                                       ", expected < vocab_size ", vocab_size));
      }
    }
    out->insert(out->end(), tokens.begin(), tokens.end());
  }
  return absl::OkStatus();
}

}  // namespace

TokenDataset::TokenDataset(std::vector<uint16_t> train, std::vector<uint16_t> val,
                           int64_t vocab_size)
    : train_(std::move(train)), val_(std::move(val)), vocab_size_(vocab_size) {}

absl::StatusOr<TokenDataset> TokenDataset::FromByteCorpus(const std::vector<std::string>& paths,
                                                          double val_fraction) {
  // Written so that NaN fails too.
  if (!(val_fraction > 0.0 && val_fraction <= 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("val_fraction is ", val_fraction, ", expected in (0, 0.5]"));
  }
  RESBM_ASSIGN_OR_RETURN(std::vector<uint16_t> bytes, ReadByteCorpus(paths));
  const size_t val_size =
      static_cast<size_t>(std::floor(static_cast<double>(bytes.size()) * val_fraction));
  if (val_size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("byte corpus of ", bytes.size(), " bytes with val_fraction ", val_fraction,
                     " gives an empty validation split, expected at least 1 byte"));
  }
  const size_t train_size = bytes.size() - val_size;
  std::vector<uint16_t> val(bytes.begin() + static_cast<std::ptrdiff_t>(train_size), bytes.end());
  bytes.resize(train_size);
  bytes.shrink_to_fit();
  return TokenDataset(std::move(bytes), std::move(val), kByteVocabSize);
}

absl::StatusOr<TokenDataset> TokenDataset::FromTokenShards(
    const std::vector<std::string>& train_paths, const std::vector<std::string>& val_paths,
    int64_t vocab_size) {
  if (vocab_size < 1 || vocab_size > kMaxShardVocabSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size is ", vocab_size, ", expected in [1, ", kMaxShardVocabSize, "]"));
  }
  if (train_paths.empty()) {
    return absl::InvalidArgumentError("train shard paths: none given, expected at least one");
  }
  if (val_paths.empty()) {
    return absl::InvalidArgumentError("val shard paths: none given, expected at least one");
  }
  std::vector<uint16_t> train;
  std::vector<uint16_t> val;
  RESBM_RETURN_IF_ERROR(AppendShards(train_paths, vocab_size, &train));
  RESBM_RETURN_IF_ERROR(AppendShards(val_paths, vocab_size, &val));
  return TokenDataset(std::move(train), std::move(val), vocab_size);
}

TokenDataset TokenDataset::FromTokens(std::vector<uint16_t> train, std::vector<uint16_t> val,
                                      int64_t vocab_size) {
  return TokenDataset(std::move(train), std::move(val), vocab_size);
}

absl::Status TokenDataset::CheckFits(int64_t seq_len) const {
  if (seq_len < 1) {
    return absl::InvalidArgumentError(absl::StrCat("seq_len is ", seq_len, ", expected >= 1"));
  }
  const int64_t need = seq_len + 2;
  const std::pair<const char*, const std::vector<uint16_t>*> splits[] = {{"train", &train_},
                                                                         {"val", &val_}};
  for (const auto& [name, tokens] : splits) {
    const int64_t size = static_cast<int64_t>(tokens->size());
    if (size < need) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, " split has ", size, " tokens, expected at least seq_len + 2 = ", need));
    }
  }
  return absl::OkStatus();
}

double TokenDataset::UnigramEntropyNats() const {
  if (train_.empty()) return 0.0;
  // Sized for any uint16 token, so it is safe even for FromTokens data outside the vocabulary.
  std::vector<int64_t> counts(kMaxShardVocabSize, 0);
  for (uint16_t token : train_) ++counts[token];
  const double total = static_cast<double>(train_.size());
  double entropy = 0.0;
  for (int64_t count : counts) {
    if (count == 0) continue;
    const double p = static_cast<double>(count) / total;
    entropy -= p * std::log(p);
  }
  return entropy;
}

}  // namespace resbm
