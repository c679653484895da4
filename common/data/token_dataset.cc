#include "common/data/token_dataset.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/data/byte_corpus.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

constexpr int64_t kByteVocabSize = 256;
constexpr int64_t kMaxShardVocabSize = 65536;  // Shard tokens are uint16.

}  // namespace

TokenDataset::TokenDataset(TokenStream train, TokenStream val, int64_t vocab_size)
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
  return TokenDataset(TokenStream::InMemory(std::move(bytes)),
                      TokenStream::InMemory(std::move(val)), kByteVocabSize);
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
  RESBM_ASSIGN_OR_RETURN(TokenStream train, TokenStream::OpenShards(train_paths, vocab_size));
  RESBM_ASSIGN_OR_RETURN(TokenStream val, TokenStream::OpenShards(val_paths, vocab_size));
  return TokenDataset(std::move(train), std::move(val), vocab_size);
}

TokenDataset TokenDataset::FromTokens(std::vector<uint16_t> train, std::vector<uint16_t> val,
                                      int64_t vocab_size) {
  return TokenDataset(TokenStream::InMemory(std::move(train)),
                      TokenStream::InMemory(std::move(val)), vocab_size);
}

absl::Status TokenDataset::CheckFits(int64_t seq_len) const {
  if (seq_len < 1) {
    return absl::InvalidArgumentError(absl::StrCat("seq_len is ", seq_len, ", expected >= 1"));
  }
  const int64_t need = seq_len + 2;
  const std::pair<const char*, const TokenStream*> splits[] = {{"train", &train_}, {"val", &val_}};
  for (const auto& [name, tokens] : splits) {
    const int64_t size = tokens->size();
    if (size < need) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, " split has ", size, " tokens, expected at least seq_len + 2 = ", need));
    }
  }
  return absl::OkStatus();
}

absl::Status TokenDataset::CheckUnchanged() const {
  RESBM_RETURN_IF_ERROR(train_.CheckUnchanged());
  return val_.CheckUnchanged();
}

DatasetFingerprint TokenDataset::fingerprint() const {
  return DatasetFingerprint{train_.fingerprints(), val_.fingerprints()};
}

absl::Status TokenDataset::CheckSameAs(const DatasetFingerprint& recorded) const {
  RESBM_RETURN_IF_ERROR(CompareFingerprints(recorded.train, train_.fingerprints(), "train"));
  return CompareFingerprints(recorded.val, val_.fingerprints(), "val");
}

absl::StatusOr<double> TokenDataset::UnigramEntropyNats() const {
  const int64_t total = std::min(train_.size(), kUnigramEntropyTokens);
  if (total == 0) return 0.0;
  // Sized for any uint16 token, so it is safe even for FromTokens data outside the vocabulary.
  std::vector<int64_t> counts(kMaxShardVocabSize, 0);
  std::vector<uint16_t> chunk(int64_t{1} << 20);
  for (int64_t offset = 0; offset < total;) {
    const int64_t n = std::min(static_cast<int64_t>(chunk.size()), total - offset);
    RESBM_RETURN_IF_ERROR(train_.Read(offset, n, chunk.data()));
    for (int64_t i = 0; i < n; ++i) ++counts[chunk[i]];
    offset += n;
  }
  double entropy = 0.0;
  for (int64_t count : counts) {
    if (count == 0) continue;
    const double p = static_cast<double>(count) / static_cast<double>(total);
    entropy -= p * std::log(p);
  }
  return entropy;
}

}  // namespace resbm
