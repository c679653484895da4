#include "common/train/job_dataset.h"

#include <string>
#include <vector>

#include "common/status/status_macros.h"

namespace resbm {

absl::StatusOr<TokenDataset> LoadJobDataset(const v1::JobConfig& config) {
  const auto& data = config.data();
  auto dataset = [&]() -> absl::StatusOr<TokenDataset> {
    if (data.has_token_shards()) {
      const auto& shards = data.token_shards();
      return TokenDataset::FromTokenShards(
          std::vector<std::string>(shards.train_paths().begin(), shards.train_paths().end()),
          std::vector<std::string>(shards.val_paths().begin(), shards.val_paths().end()),
          config.model().vocab_size());
    }
    const auto& corpus = data.byte_corpus();
    return TokenDataset::FromByteCorpus(
        std::vector<std::string>(corpus.paths().begin(), corpus.paths().end()),
        corpus.val_fraction());
  }();
  if (!dataset.ok()) return dataset.status();
  RESBM_RETURN_IF_ERROR(dataset->CheckFits(config.model().seq_len()));
  return dataset;
}

}  // namespace resbm
