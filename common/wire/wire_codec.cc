#include "common/wire/wire_codec.h"

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

// The payload size of (shape, dtype), or InvalidArgument naming both sizes when `actual`
// differs from it. Checked before anything is allocated.
absl::StatusOr<int64_t> CheckPayloadSize(const std::vector<int64_t>& shape, WireDtype dtype,
                                         int64_t actual) {
  auto expected = WirePayloadBytes(shape, dtype);
  if (!expected.ok()) return expected.status();
  if (actual != *expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("payload: ", actual, " bytes for shape [", absl::StrJoin(shape, ","), "] in ",
                     WireDtypeName(dtype), "; expected ", *expected, " bytes"));
  }
  return expected;
}

}  // namespace

absl::StatusOr<at::Tensor> WireCodec::EncodeBytes(const at::Tensor& x, WireDtype dtype) {
  if (!x.defined() || x.dim() < 1 || !x.is_floating_point()) {
    return absl::InvalidArgumentError(
        "wire encode: expected a defined floating-point tensor of rank >= 1");
  }
  return AtTorchSeam("wire codec", "encode", [&]() -> absl::StatusOr<at::Tensor> {
    auto values = x.detach().to(torch::kFloat32).contiguous();  // (..., k)
    if (dtype != WireDtype::kInt8) {
      return values.to(TorchDtype(dtype)).reshape({-1}).view(torch::kUInt8);  // (N k bytes)
    }
    const int64_t width = values.size(-1);
    auto rows = values.reshape({-1, width});  // (N, k)
    auto amax = rows.abs().amax(/*dim=*/1);   // (N)
    // Tensor by tensor: CUDA divides by a host scalar as a multiply by its reciprocal (one
    // bit off); a true division rounds the same on every device.
    auto scale = amax / torch::full_like(amax, 127.0);  // (N)
    // An all-zero token keeps scale 0 and quantises to zeros.
    auto safe = torch::where(scale > 0, scale, torch::ones_like(scale));                // (N)
    auto q = torch::round(rows / safe.unsqueeze(1)).clamp(-127, 127).to(torch::kInt8);  // (N, k)
    return torch::cat({scale.contiguous().view(torch::kUInt8),                          // (4 N)
                       q.reshape({-1}).view(torch::kUInt8)});                           // (N k)
  });
}

absl::StatusOr<at::Tensor> WireCodec::DecodeBytes(const at::Tensor& bytes,
                                                  const std::vector<int64_t>& shape,
                                                  WireDtype dtype) {
  if (!bytes.defined() || bytes.dim() != 1 || bytes.scalar_type() != torch::kUInt8) {
    return absl::InvalidArgumentError("wire decode: expected a 1-D uint8 tensor of payload bytes");
  }
  auto expected = CheckPayloadSize(shape, dtype, bytes.numel());
  if (!expected.ok()) return expected.status();
  return AtTorchSeam("wire codec", "decode", [&]() -> absl::StatusOr<at::Tensor> {
    auto contiguous = bytes.contiguous();
    if (dtype != WireDtype::kInt8) {
      return contiguous.view(TorchDtype(dtype)).reshape(shape).to(torch::kFloat32);  // (..., k)
    }
    const int64_t width = shape.back();
    const int64_t tokens = *expected / (width + int64_t{sizeof(float)});
    const int64_t scale_bytes = tokens * int64_t{sizeof(float)};
    auto scale = contiguous.narrow(0, 0, scale_bytes).view(torch::kFloat32);  // (N)
    auto q = contiguous.narrow(0, scale_bytes, tokens * width)
                 .view(torch::kInt8)
                 .reshape({tokens, width});                              // (N, k)
    return (q.to(torch::kFloat32) * scale.unsqueeze(1)).reshape(shape);  // (..., k)
  });
}

absl::StatusOr<WireTensor> WireCodec::Encode(const at::Tensor& x, WireDtype dtype) {
  auto bytes = EncodeBytes(x, dtype);
  if (!bytes.ok()) return bytes.status();
  return AtTorchSeam("wire codec", "encode", [&]() -> absl::StatusOr<WireTensor> {
    auto host = bytes->to(torch::kCPU).contiguous();  // (payload bytes)
    WireTensor wire;
    wire.dtype = dtype;
    wire.shape = x.sizes().vec();
    wire.payload.assign(static_cast<const char*>(host.data_ptr()), host.numel());
    return wire;
  });
}

absl::StatusOr<int64_t> WireCodec::CheckPayload(const WireTensor& wire) {
  return CheckPayloadSize(wire.shape, wire.dtype, static_cast<int64_t>(wire.payload.size()));
}

absl::StatusOr<at::Tensor> WireCodec::Decode(const WireTensor& wire) {
  auto expected = CheckPayload(wire);
  if (!expected.ok()) return expected.status();
  auto bytes = AtTorchSeam("wire codec", "decode", [&]() -> absl::StatusOr<at::Tensor> {
    // Our own copy: an fp32 payload decodes to a view of it.
    auto owned = torch::empty({*expected}, torch::kUInt8);
    std::memcpy(owned.data_ptr(), wire.payload.data(), wire.payload.size());
    return owned;
  });
  if (!bytes.ok()) return bytes.status();
  return DecodeBytes(*bytes, wire.shape, wire.dtype);
}

}  // namespace resbm
