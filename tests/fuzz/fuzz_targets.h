// The fuzz targets' bodies as plain functions, so libFuzzer drivers (one per target) and the
// regression test (every saved input, in the normal build) run the same code. Each returns 0
// and aborts (a CHECK-like failure) when a property it checks does not hold.
#ifndef RESBM_TESTS_FUZZ_FUZZ_TARGETS_H_
#define RESBM_TESTS_FUZZ_FUZZ_TARGETS_H_

#include <cstddef>
#include <cstdint>

namespace resbm::fuzz {

// FrameCodec::Decode on a TensorFrame parsed from the bytes as the stream's reactors parse a
// message (ParseFrameMessage, which must agree with protobuf's parser), and on one built from them
// (header fields from the first bytes, the rest as payload) against a fixed expectation; a
// frame that decodes must encode and decode back to the same values.
int FrameDecode(const uint8_t* data, size_t size);

// ParseJobConfigJson and ParseJobConfigTextproto, then ValidateJobConfig and the conversions
// to the model's option structs for a config that validates.
int JobConfig(const uint8_t* data, size_t size);

// ParseTokenShard: a shard that parses has exactly (size - header) / 2 tokens.
int TokenShard(const uint8_t* data, size_t size);

// SafetensorsFile::ParseAll: a file that parses re-serializes to one that parses to the same
// tensors and metadata; a refused one says why.
int Safetensors(const uint8_t* data, size_t size);

}  // namespace resbm::fuzz

#endif  // RESBM_TESTS_FUZZ_FUZZ_TARGETS_H_
