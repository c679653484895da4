// LoadJobDataset: builds the TokenDataset a job config names (a byte corpus or llm.c token
// shards) and checks it fits the model's context; and the conversions of the shards'
// fingerprints to and from the job's record. Thread-safe (pure I/O on its arguments).
#ifndef RESBM_COMMON_TRAIN_JOB_DATASET_H_
#define RESBM_COMMON_TRAIN_JOB_DATASET_H_

#include "absl/status/statusor.h"
#include "common/data/token_dataset.h"
#include "resbm/v1/config.pb.h"
#include "resbm/v1/job_service.pb.h"

namespace resbm {

// `config` must have passed ValidateJobConfig.
absl::StatusOr<TokenDataset> LoadJobDataset(const v1::JobConfig& config);

v1::DataRecord ToDataRecord(const DatasetFingerprint& fingerprint);
DatasetFingerprint FromDataRecord(const v1::DataRecord& record);

}  // namespace resbm

#endif  // RESBM_COMMON_TRAIN_JOB_DATASET_H_
