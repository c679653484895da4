#include "common/data/byte_corpus.h"

#include <unistd.h>

#include <cstdint>
#include <filesystem>
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

TEST(ByteCorpusTest, ReadsOneFileAsBytes) {
  ScopedTempDir dir;
  const std::string path = dir.WriteFile("a", std::string("hi\xff\x00", 4));
  absl::StatusOr<std::vector<uint16_t>> tokens = ReadByteCorpus({path});
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_THAT(*tokens, ElementsAre('h', 'i', 255, 0));
}

TEST(ByteCorpusTest, ReadsDirectoryInNameOrderSkippingIndexFilesAndSymlinks) {
  // Mirrors /usr/share/games/fortunes: `name`, `name.dat` index, `name.u8` symlink.
  ScopedTempDir dir;
  dir.WriteFile("b", "second\n");
  dir.WriteFile("a", "first\n");
  dir.WriteFile("a.dat", "INDEX");
  ASSERT_EQ(::symlink("a", dir.File("a.u8").c_str()), 0);
  ASSERT_EQ(::symlink("b", dir.File("link").c_str()), 0);
  std::filesystem::create_directory(dir.File("sub"));
  dir.WriteFile("sub/c", "nested");
  absl::StatusOr<std::vector<uint16_t>> tokens = ReadByteCorpus({dir.path()});
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(DecodeBytes(*tokens), "first\nsecond\n");
}

TEST(ByteCorpusTest, ConcatenatesPathsInGivenOrder) {
  ScopedTempDir dir;
  const std::string z = dir.WriteFile("z", "zz");
  std::filesystem::create_directory(dir.File("d"));
  dir.WriteFile("d/x", "xx");
  absl::StatusOr<std::vector<uint16_t>> tokens = ReadByteCorpus({z, dir.File("d"), z});
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(DecodeBytes(*tokens), "zzxxzz");
}

TEST(ByteCorpusTest, RejectsMissingPath) {
  ScopedTempDir dir;
  const std::string missing = dir.File("nope");
  absl::StatusOr<std::vector<uint16_t>> tokens = ReadByteCorpus({missing});
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(tokens.status().message(), HasSubstr(missing));
}

TEST(ByteCorpusTest, RejectsEmptyCorpus) {
  ScopedTempDir dir;
  dir.WriteFile("empty", "");
  dir.WriteFile("only.dat", "index bytes are not corpus");
  absl::StatusOr<std::vector<uint16_t>> tokens = ReadByteCorpus({dir.path()});
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tokens.status().message(), HasSubstr("0 bytes"));
}

TEST(ByteCorpusTest, RejectsNoPaths) {
  EXPECT_EQ(ReadByteCorpus({}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ByteCorpusTest, DecodeBytesReplacesNonBytesWithQuestionMark) {
  EXPECT_EQ(DecodeBytes({'o', 'k', 256, 65535, '!'}),
            "ok?"
            "?!");
  EXPECT_EQ(DecodeBytes({}), "");
}

}  // namespace
}  // namespace resbm
