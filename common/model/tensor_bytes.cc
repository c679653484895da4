#include "common/model/tensor_bytes.h"

#include <torch/torch.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/model/torch_seam.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

absl::StatusOr<TensorDtype> FromScalarType(torch::ScalarType type, const std::string& name) {
  switch (type) {
    case torch::kFloat32:
      return TensorDtype::kFloat32;
    case torch::kFloat64:
      return TensorDtype::kFloat64;
    case torch::kInt64:
      return TensorDtype::kInt64;
    case torch::kBFloat16:
      return TensorDtype::kBFloat16;
    case torch::kFloat16:
      return TensorDtype::kFloat16;
    case torch::kInt32:
      return TensorDtype::kInt32;
    case torch::kUInt8:
      return TensorDtype::kUInt8;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", name, ": dtype ", c10::toString(type), " is not storable"));
  }
}

torch::ScalarType ToScalarType(TensorDtype dtype) {
  switch (dtype) {
    case TensorDtype::kFloat32:
      return torch::kFloat32;
    case TensorDtype::kFloat64:
      return torch::kFloat64;
    case TensorDtype::kInt64:
      return torch::kInt64;
    case TensorDtype::kBFloat16:
      return torch::kBFloat16;
    case TensorDtype::kFloat16:
      return torch::kFloat16;
    case TensorDtype::kInt32:
      return torch::kInt32;
    case TensorDtype::kUInt8:
      return torch::kUInt8;
  }
  return torch::kFloat32;
}

}  // namespace

absl::StatusOr<RawTensor> TensorBytes::ToRaw(const std::string& name, const at::Tensor& tensor) {
  RawTensor raw;
  raw.name = name;
  RESBM_ASSIGN_OR_RETURN(raw.dtype, FromScalarType(tensor.scalar_type(), name));
  return AtTorchSeam(name, "to bytes", [&]() -> absl::StatusOr<RawTensor> {
    auto host = tensor.detach().to(torch::kCPU).contiguous();
    raw.shape.assign(host.sizes().begin(), host.sizes().end());
    raw.data.assign(static_cast<const char*>(host.data_ptr()),
                    static_cast<size_t>(host.numel() * host.element_size()));
    return raw;
  });
}

absl::StatusOr<at::Tensor> TensorBytes::FromRaw(const RawTensor& raw) {
  for (int64_t dim : raw.shape) {
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", raw.name, ": shape ", ShapeString(raw.shape), " is negative"));
    }
  }
  const uint64_t expected = static_cast<uint64_t>(raw.numel()) * ElementSize(raw.dtype);
  if (raw.data.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", raw.name, ": ", raw.data.size(),
                                                   " bytes; expected ", expected, " for ",
                                                   ShapeString(raw.shape)));
  }
  return AtTorchSeam(raw.name, "from bytes", [&]() -> absl::StatusOr<at::Tensor> {
    auto tensor = torch::empty(raw.shape, ToScalarType(raw.dtype));
    if (!raw.data.empty()) std::memcpy(tensor.data_ptr(), raw.data.data(), raw.data.size());
    return tensor;
  });
}

absl::StatusOr<std::vector<RawTensor>> TensorBytes::ToRaw(const NamedTensors& tensors) {
  std::vector<RawTensor> raws;
  raws.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    RESBM_ASSIGN_OR_RETURN(RawTensor raw, ToRaw(name, tensor));
    raws.push_back(std::move(raw));
  }
  return raws;
}

absl::StatusOr<NamedTensors> TensorBytes::FromRaw(const std::vector<RawTensor>& raws) {
  NamedTensors tensors;
  tensors.reserve(raws.size());
  for (const RawTensor& raw : raws) {
    RESBM_ASSIGN_OR_RETURN(at::Tensor tensor, FromRaw(raw));
    tensors.emplace_back(raw.name, std::move(tensor));
  }
  return tensors;
}

}  // namespace resbm
