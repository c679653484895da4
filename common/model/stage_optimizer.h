// StageOptimizer: the optimizer of one stage. Splits the stage's parameters into the Muon
// group (2-D hidden matrices: attention, MLP, boundary E and D) and the AdamW group
// (embedding, LM head, norm gains), applies the schedule and the global clip factor.
// Holds references to the stage's parameters (the Stage must outlive it). Not thread-safe.
#ifndef RESBM_COMMON_MODEL_STAGE_OPTIMIZER_H_
#define RESBM_COMMON_MODEL_STAGE_OPTIMIZER_H_

#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "common/model/adamw.h"
#include "common/model/model_options.h"
#include "common/model/muon.h"
#include "common/model/named_tensors.h"
#include "common/model/outer_optimizer.h"

namespace resbm {

class StageOptimizer {
 public:
  // `params`: the stage's named parameters (names as in Stage::named_parameters()).
  StageOptimizer(const NamedTensors& params, const OptimizerOptions& options);

  // True for parameters Muon optimizes when options.use_muon.
  static bool IsHiddenMatrix(const std::string& name, const at::Tensor& param);

  // Sum of squares of every gradient of this stage (for the global norm).
  double GradSquaredNorm() const;

  // Every parameter's gradient as fp32 on the host, flattened in parameter order (zeros for a
  // parameter without one): what replicas of the stage all-reduce.
  std::vector<float> FlatGradients() const;
  // Sets the gradients from such values (FlatGradients' length), copied; afterwards every
  // parameter has one.
  absl::Status SetFlatGradients(const std::vector<float>& values);

  // Scales gradients by `clip_factor`, steps both groups at the scheduled rate for 0-based
  // `step`, and zeroes the gradients.
  void Step(int64_t step, double clip_factor);

  void ZeroGrad();

  // Optimizer state prefixed "muon." / "adamw." (and "outer.") for checkpoints.
  NamedTensors State() const;
  // A state without "outer." entries (a checkpoint of synchronous training) leaves the outer
  // optimizer to start afresh from the parameters: see ParametersLoaded.
  absl::Status LoadState(const NamedTensors& state);
  // After a load has set the parameters: the outer optimizer, if its state was not loaded,
  // takes them as its anchor.
  void ParametersLoaded();

  // DiLoCo's outer step across replicas; null when options.outer.steps is 0.
  OuterOptimizer* outer() { return outer_.get(); }

 private:
  NamedTensors params_;
  OptimizerOptions options_;
  std::unique_ptr<Muon> muon_;    // Null when every parameter goes to AdamW.
  std::unique_ptr<Muon> halves_;  // E and D at their own learning rate; null at scale 1.
  std::unique_ptr<AdamW> adamw_;  // Null when the stage has no AdamW parameter.
  std::unique_ptr<OuterOptimizer> outer_;
  bool outer_loaded_ = false;  // The last LoadState held the outer optimizer's state.
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_STAGE_OPTIMIZER_H_
