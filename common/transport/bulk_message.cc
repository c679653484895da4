#include "common/transport/bulk_message.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace resbm {
namespace {

constexpr int kLengthDelimited = 2;
constexpr int kMaxFieldNumber = (1 << 29) - 1;

void AppendVarint(uint64_t value, std::string* out) {
  for (; value >= 0x80; value >>= 7) out->push_back(static_cast<char>((value & 0x7f) | 0x80));
  out->push_back(static_cast<char>(value));
}

// Reads a received message's bytes in order across its slices.
class SliceCursor {
 public:
  explicit SliceCursor(const std::vector<grpc::Slice>& slices) : slices_(slices) {
    for (const grpc::Slice& slice : slices_) left_ += slice.size();
    SkipEmpty();
  }

  bool done() const { return left_ == 0; }

  // A varint; its raw bytes are appended to `raw` if not null.
  bool ReadVarint(uint64_t* value, std::string* raw) {
    *value = 0;
    for (int shift = 0; shift < 64 && !done(); shift += 7) {
      const uint8_t byte = Next();
      if (raw != nullptr) raw->push_back(static_cast<char>(byte));
      *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  // Appends the next `n` bytes to `out`.
  bool Copy(uint64_t n, std::string* out) {
    return Take(n, [out](const grpc::Slice& slice, size_t begin, size_t end) {
      out->append(reinterpret_cast<const char*>(slice.begin()) + begin, end - begin);
    });
  }
  // The next `n` bytes as sub-slices (references, no copy).
  bool Share(uint64_t n, std::vector<grpc::Slice>* out) {
    return Take(n, [out](const grpc::Slice& slice, size_t begin, size_t end) {
      out->push_back(begin == 0 && end == slice.size() ? slice : slice.sub(begin, end));
    });
  }

 private:
  uint8_t Next() {
    const uint8_t byte = slices_[index_].begin()[offset_++];
    --left_;
    SkipEmpty();
    return byte;
  }
  template <typename Part>
  bool Take(uint64_t n, Part&& part) {
    if (n > left_) return false;
    while (n > 0) {
      const grpc::Slice& slice = slices_[index_];
      const size_t end =
          offset_ + static_cast<size_t>(std::min<uint64_t>(n, slice.size() - offset_));
      part(slice, offset_, end);
      n -= end - offset_;
      left_ -= end - offset_;
      offset_ = end;
      SkipEmpty();
    }
    return true;
  }
  void SkipEmpty() {
    while (index_ < slices_.size() && offset_ == slices_[index_].size()) {
      ++index_;
      offset_ = 0;
    }
  }

  const std::vector<grpc::Slice>& slices_;
  size_t index_ = 0;
  size_t offset_ = 0;
  uint64_t left_ = 0;
};

absl::Status Malformed(uint64_t at_field, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("message: field ", at_field, ": ", what, "; not a valid protobuf message"));
}

// One field of the wire format that is not the bulk field: copied to `rest` whole.
bool CopyField(SliceCursor& cursor, int wire_type, std::string* rest) {
  uint64_t value = 0;
  switch (wire_type) {
    case 0:
      return cursor.ReadVarint(&value, rest);
    case 1:
      return cursor.Copy(8, rest);
    case kLengthDelimited:
      return cursor.ReadVarint(&value, rest) && cursor.Copy(value, rest);
    case 5:
      return cursor.Copy(4, rest);
    default:  // Groups (3, 4) are not proto3; 6 and 7 do not exist.
      return false;
  }
}

}  // namespace

grpc::ByteBuffer JoinBulkField(const google::protobuf::MessageLite& fields, int field_number,
                               const BulkBytes& bulk) {
  std::string head = fields.SerializeAsString();
  AppendVarint((static_cast<uint64_t>(field_number) << 3) | kLengthDelimited, &head);
  AppendVarint(bulk.size(), &head);
  std::vector<grpc::Slice> slices;
  slices.reserve(1 + bulk.slices().size());
  slices.emplace_back(head);
  for (const grpc::Slice& slice : bulk.slices()) slices.push_back(slice);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

absl::Status SplitBulkField(const grpc::ByteBuffer& message, int field_number,
                            google::protobuf::MessageLite* fields, BulkBytes* bulk) {
  std::vector<grpc::Slice> slices;
  // An invalid buffer is an empty message (what gRPC hands over for zero bytes).
  if (message.Valid() && !message.Dump(&slices).ok()) {
    return absl::InvalidArgumentError("message: its bytes cannot be read");
  }
  SliceCursor cursor(slices);
  std::string rest;
  std::vector<grpc::Slice> bulk_slices;
  bool bulk_seen = false;
  while (!cursor.done()) {
    uint64_t tag = 0;
    std::string raw_tag;
    if (!cursor.ReadVarint(&tag, &raw_tag)) return Malformed(0, "truncated tag");
    const uint64_t number = tag >> 3;
    const int wire_type = static_cast<int>(tag & 7);
    if (number == 0 || number > kMaxFieldNumber) {
      return Malformed(number, absl::StrCat("field number out of [1, ", kMaxFieldNumber, "]"));
    }
    if (number != static_cast<uint64_t>(field_number)) {
      rest += raw_tag;
      if (!CopyField(cursor, wire_type, &rest)) {
        return Malformed(number, absl::StrCat("wire type ", wire_type, ", truncated or unknown"));
      }
      continue;
    }
    uint64_t length = 0;
    if (wire_type != kLengthDelimited) {
      return Malformed(number, absl::StrCat("wire type ", wire_type, "; expected 2 (bytes)"));
    }
    if (bulk_seen) return Malformed(number, "the bulk bytes twice");
    if (!cursor.ReadVarint(&length, nullptr) || !cursor.Share(length, &bulk_slices)) {
      return Malformed(number, "truncated bytes");
    }
    bulk_seen = true;
  }
  if (!fields->ParseFromString(rest)) return Malformed(0, "the other fields do not parse");
  *bulk = BulkBytes(std::move(bulk_slices));
  return absl::OkStatus();
}

}  // namespace resbm
