// OuterOptimizer: DiLoCo's outer step for one stage replica. It keeps the parameters as they
// were at the last synchronisation (the anchor) and the outer momentum; at a synchronisation
// the replica's change since the anchor is encoded for the wire (EncodeDelta), every
// replica's encoding is gathered, and Step averages them in replica order and takes one
// Nesterov SGD step from the anchor. Replicas that gather the same bytes end bit-identical.
// Holds references to the stage's parameters (the Stage must outlive it). Not thread-safe.
#ifndef RESBM_COMMON_MODEL_OUTER_OPTIMIZER_H_
#define RESBM_COMMON_MODEL_OUTER_OPTIMIZER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/model_options.h"
#include "common/model/named_tensors.h"

namespace resbm {

class OuterOptimizer {
 public:
  // Values per encoded row: int8 carries one fp32 scale per row.
  static constexpr int64_t kRowValues = 256;

  // The anchor starts as the parameters' current values.
  OuterOptimizer(const NamedTensors& params, const OuterOptions& options);

  // anchor - parameters, flattened in parameter order, zero-padded to whole rows and
  // encoded in options.dtype: the bytes this replica contributes.
  absl::StatusOr<std::string> EncodeDelta() const;
  // The outer step from every replica's EncodeDelta (the same bytes, in replica order, on
  // every replica): g = mean(deltas); m = momentum m + g; anchor -= lr (g + momentum m);
  // parameters = anchor. InvalidArgument (nothing changed) if a delta has the wrong size.
  absl::Status Step(const std::vector<std::string>& deltas);
  // Makes the parameters' current values the anchor (after they were loaded).
  void Reanchor();

  // "anchor.<param>" and "momentum.<param>" for checkpoints, and their restore
  // (every entry required, shapes checked before anything changes).
  NamedTensors State() const;
  absl::Status LoadState(const NamedTensors& state);

 private:
  int64_t Values() const;
  at::Tensor FlatAnchorMinusParams() const;  // (rows * kRowValues,) fp32 on the host.

  NamedTensors params_;
  OuterOptions options_;
  std::vector<at::Tensor> anchor_;    // fp32, one per parameter, on its device.
  std::vector<at::Tensor> momentum_;  // Likewise.
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_OUTER_OPTIMIZER_H_
