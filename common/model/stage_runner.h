// StageRunner: the model seam. Owns one Stage, its optimizer and the autograd state of the
// microbatches in flight, and exposes them as Status-returning calls: every LibTorch
// exception is caught here and becomes a Status naming the stage and the operation. The
// single-process trainer and the stage worker both drive stages through this class.
// Not thread-safe: one executor thread owns it (it owns the module and the device).
#ifndef RESBM_COMMON_MODEL_STAGE_RUNNER_H_
#define RESBM_COMMON_MODEL_STAGE_RUNNER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/checkpoint_file.h"
#include "common/model/model_options.h"
#include "common/model/named_tensors.h"
#include "common/model/stage_plan.h"

namespace resbm {

class StageImpl;
class StageOptimizer;

struct StageRunnerOptions {
  ModelOptions model;
  CompressionOptions compression;
  OptimizerOptions optimizer;
  StageSpec spec;
  uint64_t seed = 1337;
  // A LibTorch device string: "cpu", "cuda", "cuda:1" (see ResolveComputeDevice). Every
  // parameter, gradient and optimizer state tensor lives there.
  std::string device = "cpu";
};

class StageRunner {
 public:
  static absl::StatusOr<std::unique_ptr<StageRunner>> Create(const StageRunnerOptions& options);
  ~StageRunner();
  StageRunner(const StageRunner&) = delete;
  StageRunner& operator=(const StageRunner&) = delete;

  // Training forward of `microbatch` on a non-last stage. input: token ids (B, T) int64 on
  // the first stage, z (B, T, k) float otherwise (any device; NaN/Inf are refused in host
  // inputs, while device inputs are the caller's to check). tokens: the microbatch's token
  // ids (B, T) int64, required where uses_token_ids() and refused elsewhere. Returns z
  // (B, T, k) on the device for the next boundary, detached; the graph is kept until Backward.
  absl::StatusOr<at::Tensor> Forward(int64_t microbatch, const at::Tensor& input,
                                     const at::Tensor& tokens = at::Tensor());

  // Training forward of `microbatch` on the last stage: returns the mean loss over its tokens.
  // Backward later propagates loss * loss_scale (1 / microbatches for a mean over the step).
  absl::StatusOr<double> ForwardLoss(int64_t microbatch, const at::Tensor& input,
                                     const at::Tensor& targets, double loss_scale,
                                     const at::Tensor& tokens = at::Tensor());

  // Backward of `microbatch`: grad_output is dL/dz (B, T, k) of the z Forward returned, and
  // is ignored on the last stage. Accumulates parameter gradients and returns dL/d(input)
  // (B, T, k) as fp32 on the device, or an undefined tensor on the first stage.
  absl::StatusOr<at::Tensor> Backward(int64_t microbatch, const at::Tensor& grad_output);

  // Forward without autograd (evaluation) on a non-last stage: z (B, T, k).
  absl::StatusOr<at::Tensor> Evaluate(const at::Tensor& input,
                                      const at::Tensor& tokens = at::Tensor());
  // Forward without autograd on the last stage: the mean loss over the batch's tokens.
  absl::StatusOr<double> EvaluateLoss(const at::Tensor& input, const at::Tensor& targets,
                                      const at::Tensor& tokens = at::Tensor());
  // Forward without autograd on the last stage: the logits (B, T, V), on the host.
  absl::StatusOr<at::Tensor> EvaluateLogits(const at::Tensor& input,
                                            const at::Tensor& tokens = at::Tensor());

  // Sum of squared gradients of this stage's parameters.
  absl::StatusOr<double> GradSquaredNorm() const;
  // The parameter gradients flattened as fp32 on the host, and their replacement (the sums
  // an all-reduce over the stage's replicas made): see StageOptimizer::FlatGradients.
  absl::StatusOr<std::vector<float>> FlatGradients() const;
  // FNV-1a 64 over every parameter's bytes, in order: replicas of a stage that hold the same
  // state agree on it bit for bit. (Reads every parameter: a pass over the stage's memory.)
  absl::StatusOr<uint64_t> ParameterChecksum() const;
  absl::Status SetFlatGradients(const std::vector<float>& values);
  // Applies optimizer step `step` (0-based) with the global clip factor; zeroes gradients.
  absl::Status ApplyStep(int64_t step, double clip_factor);
  // DiLoCo (options.optimizer.outer.steps > 0): this replica's change since the last
  // synchronisation, encoded for the wire, and the outer step from every replica's encoding
  // (in replica order, the same bytes on every replica). FailedPrecondition without one.
  bool has_outer() const;
  absl::StatusOr<std::string> EncodeOuterDelta() const;
  absl::Status OuterStep(const std::vector<std::string>& deltas);
  // Drops the graphs of microbatches in flight and zeroes gradients (an aborted step).
  void AbortStep();

  // Writes parameters and optimizer state; `step` is the number of steps applied so far.
  absl::Status SaveCheckpoint(const std::string& path, int64_t step) const;
  // Restores a checkpoint written by the same stage; returns its step.
  absl::StatusOr<int64_t> LoadCheckpoint(const std::string& path);
  // The same state as bytes in memory (what a new replica of the stage is sent), and its
  // restore; `source` names the bytes in errors.
  absl::StatusOr<std::string> SaveState(int64_t step) const;
  absl::StatusOr<int64_t> LoadState(const std::string& bytes, const std::string& source);

  // The stage's parameters by stage-local name (shared storage: do not modify).
  NamedTensors Parameters() const;
  // The accumulated gradient of every parameter by local name (host copies; zeros where
  // none has flowed yet).
  NamedTensors Gradients() const;
  // The optimizer's state ("muon.<param>.momentum", ...), shared storage likewise.
  NamedTensors OptimizerState() const;
  const StageSpec& spec() const { return options_.spec; }
  // Whether Forward and friends take the microbatch's token ids besides z (a stage after
  // the first with a token channel).
  bool uses_token_ids() const;
  // The resolved device ("cpu", "cuda:0").
  const std::string& device() const { return options_.device; }
  int64_t in_flight() const { return static_cast<int64_t>(pending_.size()); }

 private:
  struct Pending {
    at::Tensor input;   // Leaf that requires grad (non-first stages), on the device.
    at::Tensor output;  // z, or the scaled loss on the last stage.
  };
  // A checked input on the device: z (or ids) and the token ids where the stage uses them.
  struct Prepared {
    at::Tensor input;
    at::Tensor tokens;
  };

  StageRunner(const StageRunnerOptions& options, std::shared_ptr<StageImpl> stage,
              std::unique_ptr<StageOptimizer> optimizer);
  absl::Status CheckInput(const at::Tensor& input) const;
  absl::StatusOr<Prepared> PrepareInput(const at::Tensor& input, const at::Tensor& tokens,
                                        bool track) const;
  absl::Status CheckIds(const char* what, const at::Tensor& ids) const;
  absl::Status CheckTokens(const at::Tensor& input, const at::Tensor& tokens) const;
  absl::Status CheckTargets(const at::Tensor& input, const at::Tensor& targets) const;
  absl::Status CheckNewMicrobatch(int64_t microbatch) const;
  // Parameters and optimizer state after `step` steps, as a checkpoint holds them.
  CheckpointContents Contents(int64_t step) const;
  // All or nothing: restores `contents` (read from `path`) or changes nothing.
  absl::StatusOr<int64_t> LoadContents(CheckpointContents contents, const std::string& path);

  StageRunnerOptions options_;
  std::shared_ptr<StageImpl> stage_;
  std::unique_ptr<StageOptimizer> optimizer_;
  std::map<int64_t, Pending> pending_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_STAGE_RUNNER_H_
