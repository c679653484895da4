#include "common/data/token_shard.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/scoped_temp_dir.h"

namespace resbm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

void AppendInt32(int32_t value, std::string* out) {
  const uint32_t v = static_cast<uint32_t>(value);
  for (int shift = 0; shift < 32; shift += 8) out->push_back(static_cast<char>(v >> shift));
}

// A shard file's bytes with the given header fields and `payload_tokens` tokens 0, 1, 2, ...
std::string ShardBytes(int32_t magic, int32_t version, int32_t count, int payload_tokens) {
  std::string bytes;
  AppendInt32(magic, &bytes);
  AppendInt32(version, &bytes);
  AppendInt32(count, &bytes);
  bytes.resize(kTokenShardHeaderBytes, '\0');
  for (int i = 0; i < payload_tokens; ++i) {
    bytes.push_back(static_cast<char>(i & 0xff));
    bytes.push_back(static_cast<char>(i >> 8));
  }
  return bytes;
}

TEST(TokenShardTest, ParsesBytesInMemoryWithTheSameChecks) {
  auto tokens = ParseTokenShard(ShardBytes(kTokenShardMagic, kTokenShardVersion, 3, 3), "mem");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_THAT(*tokens, ElementsAre(0, 1, 2));
  auto short_payload =
      ParseTokenShard(ShardBytes(kTokenShardMagic, kTokenShardVersion, 4, 3), "mem");
  EXPECT_THAT(short_payload.status().message(), HasSubstr("token shard mem: token count mismatch"));
  auto truncated = ParseTokenShard(std::string(100, '\0'), "mem");
  EXPECT_THAT(truncated.status().message(), HasSubstr("truncated header: file has 100 bytes"));
}

TEST(TokenShardTest, RoundTripsTokens) {
  ScopedTempDir dir;
  const std::string path = dir.File("shard.bin");
  const std::vector<uint16_t> tokens = {0, 1, 255, 256, 50256, 65535, 7};
  ASSERT_TRUE(WriteTokenShard(path, tokens).ok());
  absl::StatusOr<std::vector<uint16_t>> read = ReadTokenShard(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, tokens);
}

TEST(TokenShardTest, WritesLlmcLayout) {
  ScopedTempDir dir;
  const std::string path = dir.File("shard.bin");
  ASSERT_TRUE(WriteTokenShard(path, {0x0102, 0xa0b0}).ok());
  EXPECT_EQ(std::filesystem::file_size(path), static_cast<uintmax_t>(kTokenShardHeaderBytes + 4));
  std::string expected = ShardBytes(20240520, 1, 2, 0);
  expected += std::string("\x02\x01\xb0\xa0", 4);
  std::ifstream in(path, std::ios::binary);
  const std::string actual((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(actual, expected);
}

TEST(TokenShardTest, ReadsHandWrittenShard) {
  ScopedTempDir dir;
  const std::string path = dir.WriteFile("shard.bin", ShardBytes(20240520, 1, 3, 3));
  absl::StatusOr<std::vector<uint16_t>> read = ReadTokenShard(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(*read, ElementsAre(0, 1, 2));
}

TEST(TokenShardTest, OverwritesAtomicallyAndLeavesNoTempFile) {
  ScopedTempDir dir;
  const std::string path = dir.File("shard.bin");
  ASSERT_TRUE(WriteTokenShard(path, {1, 2, 3}).ok());
  ASSERT_TRUE(WriteTokenShard(path, {9}).ok());
  absl::StatusOr<std::vector<uint16_t>> read = ReadTokenShard(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(*read, ElementsAre(9));
  int entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename(), "shard.bin");
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST(TokenShardTest, RejectsMissingFileAsNotFound) {
  ScopedTempDir dir;
  const std::string path = dir.File("missing.bin");
  absl::StatusOr<std::vector<uint16_t>> read = ReadTokenShard(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr(path));
  EXPECT_THAT(read.status().message(), HasSubstr("No such file"));
}

TEST(TokenShardTest, RejectsFileShorterThanHeader) {
  ScopedTempDir dir;
  const std::string path = dir.WriteFile("short.bin", ShardBytes(20240520, 1, 1, 0).substr(0, 100));
  absl::StatusOr<std::vector<uint16_t>> read = ReadTokenShard(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("truncated header"));
  EXPECT_THAT(read.status().message(), HasSubstr("100 bytes"));
  EXPECT_THAT(read.status().message(), HasSubstr("1024"));
}

TEST(TokenShardTest, RejectsWrongMagic) {
  ScopedTempDir dir;
  const std::string path = dir.WriteFile("magic.bin", ShardBytes(12345, 1, 2, 2));
  absl::StatusOr<std::vector<uint16_t>> read = ReadTokenShard(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("expected 20240520, got 12345"));
  EXPECT_THAT(read.status().message(), HasSubstr(path));
}

TEST(TokenShardTest, RejectsUnsupportedVersion) {
  ScopedTempDir dir;
  const std::string path = dir.WriteFile("version.bin", ShardBytes(20240520, 7, 2, 2));
  absl::StatusOr<std::vector<uint16_t>> read = ReadTokenShard(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("unsupported version: expected 1, got 7"));
}

TEST(TokenShardTest, RejectsZeroTokenCount) {
  ScopedTempDir dir;
  const std::string path = dir.WriteFile("zero.bin", ShardBytes(20240520, 1, 0, 0));
  absl::StatusOr<std::vector<uint16_t>> read = ReadTokenShard(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("token count is 0"));
}

TEST(TokenShardTest, RejectsHeaderCountLargerThanPayload) {
  ScopedTempDir dir;
  // A huge count must be caught by the size check, not by a failed allocation.
  const std::string path = dir.WriteFile("big.bin", ShardBytes(20240520, 1, 2000000000, 5));
  absl::StatusOr<std::vector<uint16_t>> read = ReadTokenShard(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("header says 2000000000 tokens"));
  EXPECT_THAT(read.status().message(), HasSubstr("implies 5 tokens"));
}

TEST(TokenShardTest, RejectsPayloadLongerThanHeaderCount) {
  ScopedTempDir dir;
  const std::string path = dir.WriteFile("long.bin", ShardBytes(20240520, 1, 3, 4));
  absl::StatusOr<std::vector<uint16_t>> read = ReadTokenShard(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("token count mismatch: header says 3 tokens"));
  EXPECT_THAT(read.status().message(), HasSubstr("implies 4 tokens"));
}

TEST(TokenShardTest, RejectsOddPayloadLength) {
  ScopedTempDir dir;
  const std::string path = dir.WriteFile("odd.bin", ShardBytes(20240520, 1, 2, 2) + "x");
  absl::StatusOr<std::vector<uint16_t>> read = ReadTokenShard(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("odd trailing byte"));
}

TEST(TokenShardTest, WriteRejectsEmptyTokens) {
  ScopedTempDir dir;
  const std::string path = dir.File("empty.bin");
  absl::Status status = WriteTokenShard(path, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("0 tokens"));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(TokenShardTest, WriteIntoMissingDirectoryFails) {
  ScopedTempDir dir;
  absl::Status status = WriteTokenShard(dir.File("no/such/dir/shard.bin"), {1});
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("no/such/dir/shard.bin"));
}

}  // namespace
}  // namespace resbm
