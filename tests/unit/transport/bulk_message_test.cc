// JoinBulkField and SplitBulkField against protobuf's own serialization: the same bytes on the
// wire, the bulk field's bytes shared rather than copied, wherever gRPC's slices are cut, and
// a clear refusal of what is not a message.
#include "common/transport/bulk_message.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "resbm/v1/stage_worker.pb.h"
#include "resbm/v1/tensor_frame.pb.h"

namespace resbm {
namespace {

constexpr int kValues = v1::ReduceChunkRequest::kValuesFieldNumber;

std::string Bytes(size_t size, uint32_t seed) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * 131 + seed * 7919) >> 3);
  return bytes;
}

v1::ReduceChunkRequest Chunk(const std::string& values) {
  v1::ReduceChunkRequest chunk;
  chunk.set_job_id("job-7");
  chunk.set_step(123456789);
  chunk.set_stage_index(3);
  chunk.set_from_replica(2);
  chunk.set_round(5);
  chunk.set_piece(1);
  chunk.set_values(values);
  return chunk;
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

// `bytes` as gRPC might hand them over: cut at `cuts` (ascending offsets).
grpc::ByteBuffer Cut(const std::string& bytes, const std::vector<size_t>& cuts) {
  std::vector<grpc::Slice> slices;
  size_t begin = 0;
  for (const size_t cut : cuts) {
    slices.emplace_back(bytes.data() + begin, cut - begin);
    begin = cut;
  }
  slices.emplace_back(bytes.data() + begin, bytes.size() - begin);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

TEST(BulkMessageTest, JoinedBytesParseAsTheMessage) {
  const std::string values = Bytes(70000, 1);
  v1::ReduceChunkRequest fields = Chunk("");
  const grpc::ByteBuffer joined = JoinBulkField(fields, kValues, BulkBytes::Own(values));
  v1::ReduceChunkRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(joined)));
  EXPECT_EQ(parsed.SerializeAsString(), Chunk(values).SerializeAsString());
}

TEST(BulkMessageTest, SplitsProtobufsOwnBytesWhereverTheSlicesAreCut) {
  const std::string values = Bytes(300, 2);
  const std::string wire = Chunk(values).SerializeAsString();
  for (size_t cut = 1; cut < wire.size(); ++cut) {
    v1::ReduceChunkRequest fields;
    BulkBytes bulk;
    ASSERT_TRUE(SplitBulkField(Cut(wire, {cut}), kValues, &fields, &bulk).ok()) << cut;
    EXPECT_EQ(bulk.ToString(), values) << cut;
    EXPECT_TRUE(fields.values().empty());
    fields.set_values(values);
    EXPECT_EQ(fields.SerializeAsString(), wire) << cut;
  }
  std::vector<size_t> every_byte;  // One-byte slices: every varint straddles a cut.
  for (size_t i = 1; i < wire.size(); ++i) every_byte.push_back(i);
  v1::ReduceChunkRequest fields;
  BulkBytes bulk;
  ASSERT_TRUE(SplitBulkField(Cut(wire, every_byte), kValues, &fields, &bulk).ok());
  EXPECT_EQ(bulk.ToString(), values);
  EXPECT_EQ(fields.job_id(), "job-7");
}

TEST(BulkMessageTest, TheBulkBytesAreSharedNotCopied) {
  std::string payload = Bytes(1 << 20, 3);
  const char* where = payload.data();
  v1::TensorFrame header;
  header.set_job_id("job-1");
  header.add_shape(4);
  header.set_checksum(99);
  const grpc::ByteBuffer joined = JoinBulkField(header, v1::TensorFrame::kPayloadFieldNumber,
                                                BulkBytes::Own(std::move(payload)));
  v1::TensorFrame fields;
  BulkBytes bulk;
  ASSERT_TRUE(SplitBulkField(joined, v1::TensorFrame::kPayloadFieldNumber, &fields, &bulk).ok());
  ASSERT_EQ(bulk.slices().size(), 1u);
  EXPECT_EQ(reinterpret_cast<const char*>(bulk.slices()[0].begin()), where);
  EXPECT_EQ(bulk.ToString(), Bytes(1 << 20, 3));
  EXPECT_EQ(fields.checksum(), 99u);
  EXPECT_EQ(fields.shape_size(), 1);
}

TEST(BulkMessageTest, PinnedBytesAreReleasedOnceTheLastCopyGoes) {
  const std::string values = Bytes(4096, 4);
  int released = 0;
  {
    BulkBytes pinned = BulkBytes::Pin(
        values.data(), values.size(), [](void* count) { ++*static_cast<int*>(count); }, &released);
    const grpc::ByteBuffer joined = JoinBulkField(Chunk(""), kValues, pinned);
    BulkBytes copy = pinned;
    pinned = BulkBytes();
    EXPECT_EQ(released, 0);
    EXPECT_EQ(copy.ToString(), values);
  }
  EXPECT_EQ(released, 1);
}

TEST(BulkMessageTest, AnAbsentBulkFieldIsEmpty) {
  const std::string wire = Chunk("").SerializeAsString();
  v1::ReduceChunkRequest fields;
  BulkBytes bulk = BulkBytes::Own("stale");
  ASSERT_TRUE(SplitBulkField(Cut(wire, {}), kValues, &fields, &bulk).ok());
  EXPECT_TRUE(bulk.empty());
  EXPECT_EQ(fields.round(), 5u);
  ASSERT_TRUE(SplitBulkField(grpc::ByteBuffer(), kValues, &fields, &bulk).ok());
  EXPECT_EQ(fields.round(), 0u);
}

TEST(BulkMessageTest, RefusesWhatIsNotAMessage) {
  const std::string wire = Chunk(Bytes(100, 5)).SerializeAsString();
  const std::string values_as_varint = std::string(1, static_cast<char>(kValues << 3)) + "\x01";
  const struct {
    std::string bytes;
    std::string message;
  } cases[] = {
      {wire.substr(0, wire.size() - 1), "field 7: wire type 0, truncated"},
      {std::string(1, static_cast<char>((kValues << 3) | 2)) + "\x05ab", "truncated bytes"},
      {values_as_varint, "wire type 0; expected 2"},
      {std::string("\x0b", 1), "wire type 3"},  // A group start, field 1.
      {std::string("\x00\x01", 2), "field number out of"},
      {std::string("\x8a", 1), "truncated tag"},
      {wire + std::string(1, static_cast<char>((kValues << 3) | 2)) + std::string("\x01y", 2),
       "the bulk bytes twice"},
  };
  for (const auto& c : cases) {
    v1::ReduceChunkRequest fields;
    BulkBytes bulk;
    const absl::Status status = SplitBulkField(Cut(c.bytes, {}), kValues, &fields, &bulk);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_NE(status.message().find(c.message), std::string::npos) << status;
  }
}

}  // namespace
}  // namespace resbm
