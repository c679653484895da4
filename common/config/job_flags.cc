#include "common/config/job_flags.h"

#include "common/config/job_config.h"

namespace resbm {

void JobFlags::Register(FlagParser* flags) {
  flags->AddString("config", &config_path,
                   "job config file, JSON or textproto (default: the shipped default job)");
  flags->AddInt("steps", &steps, "override training.steps");
  flags->AddInt("stages", &stages, "override stages.num_stages (even split)");
  flags->AddInt("seed", &seed, "override training.seed");
  flags->AddString("summary-json", &summary_json, "where to write the run summary");
  flags->AddString("loss-csv", &loss_csv, "where to write the loss curve");
}

absl::StatusOr<v1::JobConfig> JobFlags::LoadConfig(const FlagParser& flags) const {
  JobOverrides overrides;
  if (flags.WasSet("steps")) overrides.steps = steps;
  if (flags.WasSet("stages")) overrides.stages = stages;
  if (flags.WasSet("seed")) overrides.seed = seed;
  return LoadJobConfigWithOverrides(config_path, overrides);
}

}  // namespace resbm
