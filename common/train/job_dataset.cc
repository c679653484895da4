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

namespace {

void AddShards(const std::vector<ShardFingerprint>& shards,
               google::protobuf::RepeatedPtrField<v1::ShardRecord>* out) {
  for (const ShardFingerprint& shard : shards) {
    v1::ShardRecord* record = out->Add();
    record->set_path(shard.path);
    record->set_bytes(static_cast<uint64_t>(shard.bytes));
    record->set_tokens(static_cast<uint64_t>(shard.tokens));
    record->set_mtime_unix_ns(shard.mtime_unix_ns);
    record->set_sample_checksum(shard.sample_checksum);
  }
}

std::vector<ShardFingerprint> Shards(
    const google::protobuf::RepeatedPtrField<v1::ShardRecord>& records) {
  std::vector<ShardFingerprint> shards;
  for (const v1::ShardRecord& r : records) {
    shards.push_back({r.path(), static_cast<int64_t>(r.bytes()), static_cast<int64_t>(r.tokens()),
                      r.mtime_unix_ns(), r.sample_checksum()});
  }
  return shards;
}

}  // namespace

v1::DataRecord ToDataRecord(const DatasetFingerprint& fingerprint) {
  v1::DataRecord record;
  AddShards(fingerprint.train, record.mutable_train());
  AddShards(fingerprint.val, record.mutable_val());
  return record;
}

DatasetFingerprint FromDataRecord(const v1::DataRecord& record) {
  return DatasetFingerprint{Shards(record.train()), Shards(record.val())};
}

}  // namespace resbm
