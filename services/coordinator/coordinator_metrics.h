// CoordinatorMetrics: the coordinator's Prometheus metrics (names and labels in the README's
// table): jobs by state, workers by health, step times, each running job's tokens/s, losses and
// the stage its last step waited on (label job_id: a job's series go when it ends, so the
// label is bounded by the jobs running at once; not `job`, which Prometheus gives the scrape
// target), recoveries by cause, resumes, checkpoints. Other labels are bounded (states,
// health, status codes). Thread-safe.
#ifndef RESBM_SERVICES_COORDINATOR_COORDINATOR_METRICS_H_
#define RESBM_SERVICES_COORDINATOR_COORDINATOR_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace resbm {

class CoordinatorMetrics {
 public:
  explicit CoordinatorMetrics(std::shared_ptr<prometheus::Registry> registry);

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  // Gauges set from a fresh count (before each scrape).
  void SetJobs(const std::map<std::string, int64_t>& jobs_by_state);
  void SetWorkers(int64_t healthy, int64_t lost);

  // The job completed optimizer step `step` (its gauge; a replayed step sets it back).
  void StepDone(const std::string& job_id, int64_t step, double seconds, double tokens_per_second,
                double train_loss);
  void Evaluated(const std::string& job_id, double val_loss);
  // Drops the job's series.
  void JobEnded(const std::string& job_id);
  void Recovered(const absl::Status& failure);
  void Resumed();
  void Checkpointed(double seconds, int64_t bytes);
  // The stage whose RunStep ended last in the job's last step (the one the others waited on).
  void WaitedOn(const std::string& job_id, int64_t stage);
  // Replicas whose parameter checksum disagreed with their stage's (PipelineDriver).
  void ReplicasRefused(int64_t count);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& jobs_;
  prometheus::Family<prometheus::Gauge>& workers_;
  prometheus::Histogram& step_seconds_;
  prometheus::Family<prometheus::Gauge>& job_step_;
  prometheus::Family<prometheus::Gauge>& tokens_per_second_;
  prometheus::Family<prometheus::Gauge>& train_loss_;
  prometheus::Family<prometheus::Gauge>& val_loss_;
  prometheus::Counter& steps_;
  prometheus::Family<prometheus::Counter>& recoveries_;
  prometheus::Counter& resumes_;
  prometheus::Histogram& checkpoint_seconds_;
  prometheus::Counter& checkpoint_bytes_;
  prometheus::Family<prometheus::Gauge>& waited_on_;
  prometheus::Counter& replica_refusals_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_COORDINATOR_METRICS_H_
