#include "common/model/raw_tensor.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace resbm {
namespace {

struct DtypeInfo {
  TensorDtype dtype;
  int64_t size;
  const char* safetensors_name;
};

constexpr DtypeInfo kDtypes[] = {
    {TensorDtype::kFloat32, 4, "F32"}, {TensorDtype::kFloat64, 8, "F64"},
    {TensorDtype::kInt64, 8, "I64"},   {TensorDtype::kBFloat16, 2, "BF16"},
    {TensorDtype::kFloat16, 2, "F16"}, {TensorDtype::kInt32, 4, "I32"},
    {TensorDtype::kUInt8, 1, "U8"},
};

const DtypeInfo& Info(TensorDtype dtype) {
  for (const auto& info : kDtypes) {
    if (info.dtype == dtype) return info;
  }
  return kDtypes[0];  // Unreachable: every enumerator is listed.
}

}  // namespace

int64_t ElementSize(TensorDtype dtype) { return Info(dtype).size; }

std::string SafetensorsDtypeName(TensorDtype dtype) { return Info(dtype).safetensors_name; }

std::optional<TensorDtype> SafetensorsDtypeFromName(absl::string_view name) {
  for (const auto& info : kDtypes) {
    if (name == info.safetensors_name) return info.dtype;
  }
  return std::nullopt;
}

int64_t RawTensor::numel() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

}  // namespace resbm
