// JobFlags: the command-line flags of a binary that runs a job from its command line
// (resbm-train): --config, --steps, --stages, --seed, --summary-json, --loss-csv; and the
// validated config they describe. Process plumbing only: the job itself is the proto config.
// Not thread-safe.
#ifndef RESBM_COMMON_CONFIG_JOB_FLAGS_H_
#define RESBM_COMMON_CONFIG_JOB_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/runtime/flag_parser.h"
#include "resbm/v1/config.pb.h"

namespace resbm {

struct JobFlags {
  std::string config_path;
  int64_t steps = 0;
  int64_t stages = 0;
  int64_t seed = 0;
  std::string summary_json = "out/summary.json";
  std::string loss_csv = "out/loss.csv";

  // Declares the flags on `flags` (which must outlive this object's use of it).
  void Register(FlagParser* flags);
  // After parsing: the config file (or the default job) with the given overrides, validated.
  absl::StatusOr<v1::JobConfig> LoadConfig(const FlagParser& flags) const;
};

}  // namespace resbm

#endif  // RESBM_COMMON_CONFIG_JOB_FLAGS_H_
