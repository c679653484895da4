// BulkBytes: the payload of a large message (a tensor frame, an all-reduce piece) as gRPC
// slices, shared and never copied on its way: the sender hands gRPC slices that own (or pin)
// the bytes, and the receiver keeps the slices gRPC read them into. A consumer that needs
// the bytes in one place copies them once, where they go (CopyTo); one that only reads them
// (a sum) walks the spans. Cheap to copy (the slices are reference-counted); immutable.
#ifndef RESBM_COMMON_TRANSPORT_BULK_BYTES_H_
#define RESBM_COMMON_TRANSPORT_BULK_BYTES_H_

#include <grpcpp/support/slice.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace resbm {

class BulkBytes {
 public:
  BulkBytes() = default;
  explicit BulkBytes(std::vector<grpc::Slice> slices);

  // Takes `bytes` without copying them: the slice owns the string until gRPC is done.
  static BulkBytes Own(std::string bytes);
  // Pins `size` bytes at `data` without copying them. `release(context)` runs once gRPC and
  // every copy of this BulkBytes have let go; until then the bytes must stay as they are.
  static BulkBytes Pin(const char* data, size_t size, void (*release)(void*), void* context);

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const std::vector<grpc::Slice>& slices() const { return slices_; }

  // Copies the bytes to `out` (room for size()).
  void CopyTo(char* out) const;
  std::string ToString() const;
  // Calls `visit(const char* data, size_t size)` on each contiguous span, in order.
  template <typename Visit>
  void ForEachSpan(Visit&& visit) const {
    for (const grpc::Slice& slice : slices_) {
      if (slice.size() > 0) visit(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
  }

 private:
  std::vector<grpc::Slice> slices_;
  size_t size_ = 0;
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRANSPORT_BULK_BYTES_H_
