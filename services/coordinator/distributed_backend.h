// DistributedBackend: the TrainingBackend of the coordinator: the pipeline runs on stage
// workers driven by a PipelineDriver; this adds up the wire traffic the workers report.
// Owns the driver. Not thread-safe.
#ifndef RESBM_SERVICES_COORDINATOR_DISTRIBUTED_BACKEND_H_
#define RESBM_SERVICES_COORDINATOR_DISTRIBUTED_BACKEND_H_

#include <memory>

#include "common/train/training_backend.h"
#include "services/coordinator/pipeline_driver.h"

namespace resbm {

class DistributedBackend : public TrainingBackend {
 public:
  // `driver` has assigned every stage.
  DistributedBackend(std::unique_ptr<PipelineDriver> driver, int64_t num_stages);

  absl::StatusOr<StepStats> TrainStep(int64_t step, const std::vector<int64_t>& inputs,
                                      const std::vector<int64_t>& targets) override;
  absl::StatusOr<double> Evaluate(int64_t round, const std::vector<int64_t>& inputs,
                                  const std::vector<int64_t>& targets) override;
  std::vector<BoundaryTraffic> Traffic() const override { return traffic_; }
  int64_t num_stages() const override { return num_stages_; }

 private:
  std::unique_ptr<PipelineDriver> driver_;
  int64_t num_stages_;
  std::vector<BoundaryTraffic> traffic_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_DISTRIBUTED_BACKEND_H_
