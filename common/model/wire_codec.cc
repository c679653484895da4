#include "common/model/wire_codec.h"

#include <torch/torch.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model/torch_seam.h"

namespace resbm {
namespace {

torch::ScalarType TorchDtype(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::kFp32:
      return torch::kFloat32;
    case WireDtype::kBf16:
      return torch::kBFloat16;
    case WireDtype::kFp16:
      return torch::kFloat16;
    case WireDtype::kInt8:
      return torch::kInt8;
  }
  return torch::kFloat32;
}

void Append(const torch::Tensor& contiguous, std::string* out) {
  out->append(static_cast<const char*>(contiguous.data_ptr()),
              contiguous.numel() * contiguous.element_size());
}

}  // namespace

absl::StatusOr<WireTensor> WireCodec::Encode(const at::Tensor& x, WireDtype dtype) {
  if (!x.defined() || x.dim() < 1 || !x.is_floating_point()) {
    return absl::InvalidArgumentError(
        "wire encode: expected a defined floating-point tensor of rank >= 1");
  }
  return AtTorchSeam("wire codec", "encode", [&]() -> absl::StatusOr<WireTensor> {
    WireTensor wire;
    wire.dtype = dtype;
    wire.shape = x.sizes().vec();
    auto host = x.detach().to(torch::kCPU, torch::kFloat32).contiguous();  // (..., k)
    if (dtype != WireDtype::kInt8) {
      auto cast = host.to(TorchDtype(dtype)).contiguous();
      wire.payload.reserve(cast.numel() * cast.element_size());
      Append(cast, &wire.payload);
      return wire;
    }
    const int64_t width = host.size(-1);
    auto rows = host.reshape({-1, width});            // (N, k)
    auto scale = rows.abs().amax(/*dim=*/1) / 127.0;  // (N)
    // An all-zero token keeps scale 0 and quantises to zeros.
    auto safe = torch::where(scale > 0, scale, torch::ones_like(scale));                // (N)
    auto q = torch::round(rows / safe.unsqueeze(1)).clamp(-127, 127).to(torch::kInt8);  // (N, k)
    wire.payload.reserve(scale.numel() * sizeof(float) + q.numel());
    Append(scale.contiguous(), &wire.payload);
    Append(q.contiguous(), &wire.payload);
    return wire;
  });
}

absl::StatusOr<at::Tensor> WireCodec::Decode(const WireTensor& wire) {
  auto expected = WirePayloadBytes(wire.shape, wire.dtype);
  if (!expected.ok()) return expected.status();
  if (static_cast<int64_t>(wire.payload.size()) != *expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "payload: ", wire.payload.size(), " bytes for shape [", absl::StrJoin(wire.shape, ","),
        "] in ", WireDtypeName(wire.dtype), "; expected ", *expected, " bytes"));
  }
  return AtTorchSeam("wire codec", "decode", [&]() -> absl::StatusOr<at::Tensor> {
    if (wire.dtype != WireDtype::kInt8) {
      auto values = torch::empty(wire.shape, TorchDtype(wire.dtype));
      std::memcpy(values.data_ptr(), wire.payload.data(), wire.payload.size());
      return values.to(torch::kFloat32);
    }
    const int64_t width = wire.shape.back();
    const int64_t tokens = *expected / (width + int64_t{sizeof(float)});
    auto scale = torch::empty({tokens}, torch::kFloat32);  // (N)
    auto q = torch::empty({tokens, width}, torch::kInt8);  // (N, k)
    std::memcpy(scale.data_ptr(), wire.payload.data(), tokens * sizeof(float));
    std::memcpy(q.data_ptr(), wire.payload.data() + tokens * sizeof(float), tokens * width);
    return (q.to(torch::kFloat32) * scale.unsqueeze(1)).reshape(wire.shape);  // (..., k)
  });
}

}  // namespace resbm
