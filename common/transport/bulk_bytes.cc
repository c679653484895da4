#include "common/transport/bulk_bytes.h"

#include <cstring>

namespace resbm {

BulkBytes::BulkBytes(std::vector<grpc::Slice> slices) : slices_(std::move(slices)) {
  for (const grpc::Slice& slice : slices_) size_ += slice.size();
}

BulkBytes BulkBytes::Own(std::string bytes) {
  if (bytes.empty()) return BulkBytes();
  auto* owned = new std::string(std::move(bytes));  // Freed by the slice's last reference.
  std::vector<grpc::Slice> slices;
  slices.emplace_back(
      owned->data(), owned->size(), [](void* string) { delete static_cast<std::string*>(string); },
      owned);
  return BulkBytes(std::move(slices));
}

BulkBytes BulkBytes::Pin(const char* data, size_t size, void (*release)(void*), void* context) {
  std::vector<grpc::Slice> slices;
  // gRPC never writes through a slice it sends; the constness is the caller's promise.
  slices.emplace_back(const_cast<char*>(data), size, release, context);
  return BulkBytes(std::move(slices));
}

void BulkBytes::CopyTo(char* out) const {
  ForEachSpan([&out](const char* data, size_t size) {
    std::memcpy(out, data, size);
    out += size;
  });
}

std::string BulkBytes::ToString() const {
  std::string bytes;
  bytes.reserve(size_);  // Appended, not zero-filled first.
  ForEachSpan([&bytes](const char* data, size_t size) { bytes.append(data, size); });
  return bytes;
}

}  // namespace resbm
