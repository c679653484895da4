#include "common/wire/wire_transfer.h"

#include <c10/core/Event.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/torch.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/model/torch_seam.h"
#include "common/wire/wire_codec.h"

namespace resbm {
namespace {

constexpr int64_t kCountBytes = sizeof(int64_t);

// The stream LibTorch launches this thread's kernels on for `device`.
c10::Stream CurrentStream(const c10::Device& device) {
  return c10::impl::VirtualGuardImpl(device.type()).getStream(device);
}

}  // namespace

WireTransfer::Pending::Pending(Pending&&) noexcept = default;
WireTransfer::Pending& WireTransfer::Pending::operator=(Pending&&) noexcept = default;
WireTransfer::Pending::~Pending() = default;

absl::StatusOr<WireTensor> WireTransfer::Pending::Finish(int64_t* non_finite) {
  return AtTorchSeam("wire transfer", "finish", [&]() -> absl::StatusOr<WireTensor> {
    if (!host_bytes_.defined()) {
      return absl::FailedPreconditionError("wire transfer: Finish on a finished Pending");
    }
    // Blocks in the device runtime, no polling: the copy stream runs boundary copies (both
    // directions) and nothing else.
    if (copy_stream_.has_value()) copy_stream_->synchronize();
    const auto* bytes = static_cast<const char*>(host_bytes_.data_ptr());
    const int64_t payload = host_bytes_.numel() - kCountBytes;
    WireTensor wire;
    wire.dtype = dtype_;
    wire.shape = std::move(shape_);
    wire.payload.assign(bytes, payload);
    std::memcpy(non_finite, bytes + payload, kCountBytes);
    device_bytes_ = at::Tensor();
    host_bytes_ = at::Tensor();
    copy_stream_.reset();
    return wire;
  });
}

absl::StatusOr<std::unique_ptr<WireTransfer>> WireTransfer::Create(const std::string& device) {
  return AtTorchSeam(
      "wire transfer", "create", [&]() -> absl::StatusOr<std::unique_ptr<WireTransfer>> {
        const c10::Device parsed(device);
        std::optional<c10::Stream> copy_stream;
        if (parsed.is_cuda()) {
          copy_stream = c10::impl::VirtualGuardImpl(parsed.type()).getStreamFromGlobalPool(parsed);
        }
        return std::unique_ptr<WireTransfer>(new WireTransfer(parsed, copy_stream));
      });
}

WireTransfer::WireTransfer(c10::Device device, std::optional<c10::Stream> copy_stream)
    : device_(device), copy_stream_(copy_stream) {}

absl::StatusOr<WireTransfer::Pending> WireTransfer::StartEncode(const at::Tensor& x,
                                                                WireDtype dtype) {
  if (x.defined() && x.device() != device_) {
    return absl::InvalidArgumentError(absl::StrCat("wire transfer: a tensor on ", x.device().str(),
                                                   "; expected one on ", device_.str()));
  }
  auto payload = WireCodec::EncodeBytes(x, dtype);  // (payload bytes) on the device
  if (!payload.ok()) return payload.status();
  return AtTorchSeam("wire transfer", "encode", [&]() -> absl::StatusOr<Pending> {
    Pending pending;
    pending.dtype_ = dtype;
    pending.shape_ = x.sizes().vec();
    // The NaN/Inf count rides with the payload: one copy, no extra wait for the check.
    auto count = (~torch::isfinite(x)).sum().to(torch::kInt64).reshape({1});    // (1)
    pending.device_bytes_ = torch::cat({*payload, count.view(torch::kUInt8)});  // (payload + 8)
    if (!copy_stream_.has_value()) {
      pending.host_bytes_ = pending.device_bytes_;
      return pending;
    }
    // The copy stream waits for the kernels that produced the bytes, and nothing later.
    c10::Event produced(device_.type());
    produced.record(CurrentStream(device_));
    produced.block(*copy_stream_);
    pending.host_bytes_ =
        torch::empty({pending.device_bytes_.numel()},
                     torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(true));
    pending.copy_stream_ = copy_stream_;
    c10::StreamGuard on_copy_stream(*copy_stream_);
    pending.host_bytes_.copy_(pending.device_bytes_, /*non_blocking=*/true);
    // A Pending dropped unfinished frees its buffer while the copy may still read it: the
    // allocator must wait for the copy stream before handing the memory out again.
    pending.device_bytes_.record_stream(*copy_stream_);
    return pending;
  });
}

absl::StatusOr<at::Tensor> WireTransfer::Upload(const WireTensor& wire) {
  if (!copy_stream_.has_value()) return WireCodec::Decode(wire);
  auto expected = WireCodec::CheckPayload(wire);
  if (!expected.ok()) return expected.status();
  auto uploaded = AtTorchSeam("wire transfer", "upload", [&]() -> absl::StatusOr<at::Tensor> {
    auto staged =
        torch::empty({*expected}, torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(true));
    std::memcpy(staged.data_ptr(), wire.payload.data(), wire.payload.size());
    const c10::Stream compute = CurrentStream(device_);
    at::Tensor bytes;
    {
      c10::StreamGuard on_copy_stream(*copy_stream_);
      // Allocated on the copy stream, which writes it first; the pinned staging buffer stays
      // reserved until the copy is done (LibTorch's host allocator records the copy).
      bytes =
          torch::empty({*expected}, torch::TensorOptions().dtype(torch::kUInt8).device(device_));
      bytes.copy_(staged, /*non_blocking=*/true);
      c10::Event copied(device_.type());
      copied.record(*copy_stream_);
      copied.block(compute);
    }
    // The compute stream reads it next: the allocator must not hand it out again before.
    bytes.record_stream(compute);
    return bytes;  // (payload bytes) on the device
  });
  if (!uploaded.ok()) return uploaded.status();
  return WireCodec::DecodeBytes(*uploaded, wire.shape, wire.dtype);
}

}  // namespace resbm
