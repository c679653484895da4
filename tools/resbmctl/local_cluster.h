// LocalCluster: `resbmctl local`: a coordinator and one stage worker per stage (plus spares)
// as separate processes on loopback. The job goes in through the job API like any other and
// is followed with a live progress bar; then every process is stopped cleanly. Logs and the
// coordinator's data directory go to `log_dir`. Not thread-safe.
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
  int64_t replicas = 0;     // Pipelines; 0: from the config.
  // Workers beyond one per stage: they take over a stage whose worker dies.
  int64_t spare_workers = 0;
  std::string summary_json = "out/summary.json";
  std::string loss_csv = "out/loss.csv";
  // Where the trained model is exported through the job API (model.safetensors and
  // config.json); empty: not exported.
  std::string export_dir = "out/model";
  // Process logs, and the coordinator's data in `log_dir`/data (wiped at start: each run is
  // a fresh cluster).
  std::string log_dir = "out/local-cluster";
  int64_t threads_per_worker = 1;
};

// Runs the job; OK when it SUCCEEDED and every process stopped cleanly.
absl::Status RunLocalCluster(const LocalClusterOptions& options);

}  // namespace resbm

#endif  // RESBM_TOOLS_RESBMCTL_LOCAL_CLUSTER_H_
