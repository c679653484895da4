// LocalCluster: `resbmctl local`: a coordinator and one stage worker per stage as separate
// processes on loopback, running one job to the end with live progress (the coordinator's
// output), then stopped cleanly. Worker logs go to `log_dir`. Not thread-safe.
#ifndef RESBM_TOOLS_RESBMCTL_LOCAL_CLUSTER_H_
#define RESBM_TOOLS_RESBMCTL_LOCAL_CLUSTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace resbm {

struct LocalClusterOptions {
  // Directory holding resbm-coordinator and resbm-worker.
  std::string bin_dir;
  std::string config_path;  // Empty: the default job.
  int64_t stages = 0;       // 0: from the config.
  int64_t steps = 0;        // 0: from the config.
  std::string summary_json = "out/summary.json";
  std::string loss_csv = "out/loss.csv";
  std::string log_dir = "out/local-cluster";
  int64_t threads_per_worker = 1;
};

// Runs the job; OK when the coordinator finished it and every process stopped cleanly.
absl::Status RunLocalCluster(const LocalClusterOptions& options);

}  // namespace resbm

#endif  // RESBM_TOOLS_RESBMCTL_LOCAL_CLUSTER_H_
