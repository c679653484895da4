// TensorBytes: LibTorch tensors to and from RawTensor (named bytes), for the model files.
// ToRaw copies any device's tensor to the host; FromRaw makes a CPU tensor owning a copy.
// Both catch LibTorch exceptions (the model seam). Stateless; thread-safe.
#ifndef RESBM_COMMON_MODEL_TENSOR_BYTES_H_
#define RESBM_COMMON_MODEL_TENSOR_BYTES_H_

#include <ATen/core/Tensor.h>

#include <string>

#include "absl/status/statusor.h"
#include "common/model/named_tensors.h"
#include "common/model/raw_tensor.h"

namespace resbm {

class TensorBytes {
 public:
  // InvalidArgument for a dtype RawTensor has no name for (e.g. complex).
  static absl::StatusOr<RawTensor> ToRaw(const std::string& name, const at::Tensor& tensor);
  // InvalidArgument when the data size does not match the shape and dtype.
  static absl::StatusOr<at::Tensor> FromRaw(const RawTensor& raw);

  static absl::StatusOr<std::vector<RawTensor>> ToRaw(const NamedTensors& tensors);
  static absl::StatusOr<NamedTensors> FromRaw(const std::vector<RawTensor>& raws);
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_TENSOR_BYTES_H_
