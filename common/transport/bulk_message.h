// A protobuf message with one large `bytes` field as gRPC carries it, without protobuf
// copying that field: JoinBulkField serializes the other fields and appends the field's tag,
// length and slices; SplitBulkField walks a received message's wire format, parses the other
// fields with protobuf and keeps the field's bytes as slices of what gRPC read. The bytes on
// the wire are an ordinary serialization of the message (protobuf reads fields in any
// order), so either end may be protobuf's own.
#ifndef RESBM_COMMON_TRANSPORT_BULK_MESSAGE_H_
#define RESBM_COMMON_TRANSPORT_BULK_MESSAGE_H_

#include <google/protobuf/message_lite.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"
#include "common/transport/bulk_bytes.h"

namespace resbm {

// `fields` must leave field `field_number` unset (it would appear twice).
grpc::ByteBuffer JoinBulkField(const google::protobuf::MessageLite& fields, int field_number,
                               const BulkBytes& bulk);

// Parses `message` into `fields` (every field but `field_number`) and `bulk` (that field's
// bytes; empty if absent). InvalidArgument for a malformed message, a field number out of
// range, a group, or the bulk field twice.
absl::Status SplitBulkField(const grpc::ByteBuffer& message, int field_number,
                            google::protobuf::MessageLite* fields, BulkBytes* bulk);

}  // namespace resbm

#endif  // RESBM_COMMON_TRANSPORT_BULK_MESSAGE_H_
