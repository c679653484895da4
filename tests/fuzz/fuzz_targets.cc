#include "tests/fuzz/fuzz_targets.h"

#include <grpcpp/support/byte_buffer.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "common/config/job_config.h"
#include "common/data/token_shard.h"
#include "common/modelio/safetensors_file.h"
#include "common/transport/frame_link.h"
#include "common/wire/frame_codec.h"
#include "google/protobuf/util/message_differencer.h"

namespace resbm::fuzz {
namespace {

// A property that must hold for every input; failing it is a crash the fuzzer reports.
void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

constexpr WireDtype kDtypes[] = {WireDtype::kFp32, WireDtype::kBf16, WireDtype::kFp16,
                                 WireDtype::kInt8};

// What a stage of a small job expects: 2 sequences of 8 tokens, k = 4.
FrameExpectation Expectation(uint8_t selector) {
  FrameExpectation expected;
  expected.job_id = "job-1";
  expected.step = selector & 1;
  expected.num_microbatches = 4;
  expected.kind = (selector & 2) ? v1::FRAME_KIND_GRADIENT : v1::FRAME_KIND_ACTIVATION;
  expected.dtype = kDtypes[(selector >> 2) & 3];
  expected.shape = {2, 8, 4};
  expected.allow_shorter_sequence = (selector & 16) != 0;
  expected.max_payload_bytes = 1 << 16;
  return expected;
}

void DecodeAndRoundTrip(const v1::TensorFrame& frame, const FrameExpectation& expected) {
  absl::StatusOr<WireTensor> tensor = FrameCodec::Decode(frame, expected);
  if (!tensor.ok()) {
    Require(!tensor.status().message().empty(), "a refused frame says why");
    return;
  }
  Require(tensor->dtype == expected.dtype, "decoded dtype is the expected one");
  Require(tensor->shape.size() == 3 && tensor->shape[0] == expected.shape[0] &&
              tensor->shape[2] == expected.shape[2],
          "decoded shape matches the assignment");
  FrameHeader header{frame.job_id(), static_cast<int64_t>(frame.step()),
                     static_cast<int64_t>(frame.microbatch()), frame.kind()};
  const std::string payload = tensor->payload;
  absl::StatusOr<WireTensor> again =
      FrameCodec::Decode(FrameCodec::Encode(header, *tensor), expected);
  Require(again.ok(), "a decoded frame re-encodes to a valid frame");
  Require(again->payload == payload, "re-encoding keeps the payload");
}

}  // namespace

int FrameDecode(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const FrameExpectation expected = Expectation(data[0]);
  // 1. The bytes as a message arrives on the stream, cut in two where gRPC might cut it, and
  // parsed as the reactors parse it (ParseFrameMessage); what it accepts, protobuf's own
  // parser reads as the very same frame.
  const size_t cut = 1 + data[0] % size;
  grpc::Slice slices[2] = {grpc::Slice(data + 1, cut - 1), grpc::Slice(data + cut, size - cut)};
  const absl::StatusOr<v1::TensorFrame> arrived = ParseFrameMessage(grpc::ByteBuffer(slices, 2));
  v1::TensorFrame parsed;
  const bool protobuf_parses = parsed.ParseFromArray(data + 1, static_cast<int>(size - 1));
  if (arrived.ok()) {
    Require(protobuf_parses, "a message the stream accepts is one protobuf parses");
    Require(arrived->SerializeAsString() == parsed.SerializeAsString(),
            "the stream's parse and protobuf's give the same frame");
    DecodeAndRoundTrip(*arrived, expected);
  }
  // 2. A frame built from the bytes, so the checks past the header are reached often.
  if (size < 8) return 0;
  v1::TensorFrame built;
  built.set_format_version(data[1] % 3);
  built.set_job_id(data[2] & 1 ? "job-1" : "job-2");
  built.set_step(data[3] % 3);
  built.set_microbatch(data[4] % 6);
  built.set_kind(data[5] & 1 ? v1::FRAME_KIND_GRADIENT : v1::FRAME_KIND_ACTIVATION);
  built.set_dtype(static_cast<v1::WireDtype>(data[6] % 6));
  const int dims = data[7] % 5;
  for (int i = 0; i < dims && 8 + i < static_cast<int>(size); ++i) {
    built.add_shape(static_cast<int8_t>(data[8 + i]));
  }
  const size_t offset = std::min(size, size_t{8} + dims);
  built.set_payload(std::string(reinterpret_cast<const char*>(data + offset), size - offset));
  WireTensor tensor;
  tensor.payload = built.payload();
  // A correct checksum half of the time, so the payload checks run.
  if (data[2] & 2) {
    built.set_checksum(
        FrameCodec::Encode({"x", 0, 0, v1::FRAME_KIND_ACTIVATION}, tensor).checksum());
  }
  DecodeAndRoundTrip(built, expected);
  return 0;
}

int JobConfig(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool json : {true, false}) {
    absl::StatusOr<v1::JobConfig> config =
        json ? ParseJobConfigJson(text) : ParseJobConfigTextproto(text);
    if (!config.ok()) {
      Require(!config.status().message().empty(), "a refused config says why");
      continue;
    }
    if (!ValidateJobConfig(*config).ok()) continue;
    (void)ToModelOptions(*config);
    (void)ToCompressionOptions(*config);
    (void)ToOptimizerOptions(*config);
    absl::StatusOr<v1::JobConfig> again = ParseJobConfigJson(JobConfigToJson(*config));
    Require(again.ok(), "a valid config's JSON parses again");
    Require(google::protobuf::util::MessageDifferencer::Equals(*again, *config),
            "a valid config round-trips through JSON");
  }
  return 0;
}

int TokenShard(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<uint16_t>> tokens = ParseTokenShard(bytes, "fuzz");
  if (!tokens.ok()) {
    Require(!tokens.status().message().empty(), "a refused shard says why");
    return 0;
  }
  Require(size >= static_cast<size_t>(kTokenShardHeaderBytes) &&
              tokens->size() == (size - kTokenShardHeaderBytes) / 2,
          "a parsed shard has (size - header) / 2 tokens");
  return 0;
}

int Safetensors(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<RawTensor>> tensors = SafetensorsFile::ParseAll(bytes, "fuzz");
  if (!tensors.ok()) {
    Require(!tensors.status().message().empty(), "a refused file says why");
    return 0;
  }
  auto header = SafetensorsFile::ParseHeader(bytes, size, "fuzz");
  Require(header.ok(), "a file that parses has a header that parses");
  for (const RawTensor& t : *tensors) {
    Require(t.data.size() == static_cast<size_t>(t.numel() * ElementSize(t.dtype)),
            "every tensor holds numel x element size bytes");
  }
  // Names may be anything JSON allows, including what our writer refuses (not UTF-8 once
  // unescaped, or __metadata__-like): only re-serialize what it accepts.
  absl::StatusOr<std::string> again = SafetensorsFile::Serialize(*tensors, header->metadata());
  if (!again.ok()) return 0;
  auto reparsed = SafetensorsFile::ParseAll(*again, "fuzz-again");
  Require(reparsed.ok(), "what the writer writes, the reader reads");
  Require(reparsed->size() == tensors->size(), "the same number of tensors");
  for (size_t i = 0; i < tensors->size(); ++i) {
    const RawTensor& a = (*tensors)[i];
    const RawTensor& b = (*reparsed)[i];
    Require(a.name == b.name && a.dtype == b.dtype && a.shape == b.shape && a.data == b.data,
            "a re-serialized tensor is the same tensor");
  }
  return 0;
}

}  // namespace resbm::fuzz
