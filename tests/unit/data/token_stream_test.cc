#include "common/data/token_stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/data/batch_sampler.h"
#include "common/data/token_shard.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/random_tokens.h"
#include "tests/testing/scoped_temp_dir.h"

namespace resbm {
namespace {

using ::testing::HasSubstr;

using ::resbm::testing::RandomTokens;

// Three shards of different sizes on disk, and their concatenation in memory.
struct ShardSet {
  std::vector<std::string> paths;
  std::vector<uint16_t> all;
};

ShardSet WriteShards(const ScopedTempDir& dir, const std::vector<int64_t>& sizes) {
  ShardSet set;
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::vector<uint16_t> tokens = RandomTokens(sizes[i], 1000, static_cast<uint64_t>(i + 1));
    set.paths.push_back(dir.File("shard" + std::to_string(i)));
    EXPECT_TRUE(WriteTokenShard(set.paths.back(), tokens).ok());
    set.all.insert(set.all.end(), tokens.begin(), tokens.end());
  }
  return set;
}

// Overwrites token `index` of the shard at `path` in place (same file, same size).
void PokeToken(const std::string& path, int64_t index, uint16_t value) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const unsigned char bytes[2] = {static_cast<unsigned char>(value),
                                  static_cast<unsigned char>(value >> 8)};
  ASSERT_EQ(::pwrite(fd, bytes, 2, kTokenShardHeaderBytes + 2 * index), 2);
  ::close(fd);
}

void SetMtime(const std::string& path, int64_t seconds) {
  const struct timespec times[2] = {{seconds, 0}, {seconds, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

TEST(TokenStreamTest, ReadsAcrossShardsEqualTheConcatenation) {
  ScopedTempDir dir;
  const ShardSet set = WriteShards(dir, {700, 5, 1300});
  absl::StatusOr<TokenStream> stream = TokenStream::OpenShards(set.paths, 1000);
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_EQ(stream->size(), static_cast<int64_t>(set.all.size()));
  std::mt19937 rng(7);
  for (int trial = 0; trial < 500; ++trial) {
    const int64_t offset = rng() % set.all.size();
    const int64_t count = rng() % (set.all.size() - offset + 1);
    std::vector<uint16_t> got(count);
    ASSERT_TRUE(stream->Read(offset, count, got.data()).ok());
    ASSERT_TRUE(std::equal(got.begin(), got.end(), set.all.begin() + offset))
        << "offset " << offset << " count " << count;
  }
}

TEST(TokenStreamTest, SamplingFromDiskEqualsSamplingFromMemory) {
  ScopedTempDir dir;
  const ShardSet set = WriteShards(dir, {300, 200, 400});
  absl::StatusOr<TokenStream> disk = TokenStream::OpenShards(set.paths, 1000);
  ASSERT_TRUE(disk.ok()) << disk.status();
  const TokenStream memory = TokenStream::InMemory(set.all);
  BatchSampler from_disk(&*disk, 64, 42), from_memory(&memory, 64, 42);
  for (int64_t step = 0; step < 50; ++step) {
    std::vector<int64_t> x1, y1, x2, y2;
    ASSERT_TRUE(from_disk.Sample(step, 0, 8, &x1, &y1).ok());
    ASSERT_TRUE(from_memory.Sample(step, 0, 8, &x2, &y2).ok());
    ASSERT_EQ(x1, x2) << "step " << step;
    ASSERT_EQ(y1, y2) << "step " << step;
  }
}

TEST(TokenStreamTest, ATokenOutsideTheVocabularyFailsTheReadThatMeetsIt) {
  ScopedTempDir dir;
  // Larger than the sampled blocks cover: the open reads blocks of 2048 tokens about 2345
  // apart, so token 2200 lies between the first two.
  std::vector<uint16_t> tokens = RandomTokens(600000, 1000, 3);
  tokens[2200] = 1000;
  const std::string path = dir.File("big");
  ASSERT_TRUE(WriteTokenShard(path, tokens).ok());
  absl::StatusOr<TokenStream> stream = TokenStream::OpenShards({path}, 1000);
  ASSERT_TRUE(stream.ok()) << stream.status();
  std::vector<uint16_t> out(100);
  EXPECT_TRUE(stream->Read(2000, 100, out.data()).ok());
  absl::Status bad = stream->Read(2150, 100, out.data());
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr(path));
  EXPECT_THAT(bad.message(), HasSubstr("token 2200 has value 1000, expected < vocab_size 1000"));

  // A small shard is read whole at open.
  const std::string small = dir.File("small");
  ASSERT_TRUE(WriteTokenShard(small, {1, 2, 1000, 3}).ok());
  absl::StatusOr<TokenStream> refused = TokenStream::OpenShards({small}, 1000);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("token 2 has value 1000"));
}

TEST(TokenStreamTest, OpenRefusesBadShardsWithTheirNames) {
  ScopedTempDir dir;
  const std::string junk = dir.WriteFile("junk", std::string(2048, 'x'));
  absl::StatusOr<TokenStream> stream = TokenStream::OpenShards({junk}, 10);
  EXPECT_EQ(stream.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(stream.status().message(), HasSubstr("junk: wrong magic"));
  EXPECT_EQ(TokenStream::OpenShards({dir.File("missing")}, 10).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(TokenStream::OpenShards({dir.path()}, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TokenStream::OpenShards({}, 10).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TokenStreamTest, AShardChangedInPlaceOrReplacedIsDetected) {
  ScopedTempDir dir;
  const ShardSet set = WriteShards(dir, {100, 100});
  absl::StatusOr<TokenStream> stream = TokenStream::OpenShards(set.paths, 1000);
  ASSERT_TRUE(stream.ok()) << stream.status();
  EXPECT_TRUE(stream->CheckUnchanged().ok());

  SetMtime(set.paths[1], 1000000000);  // What any write does to it.
  absl::Status modified = stream->CheckUnchanged();
  EXPECT_EQ(modified.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(modified.message(), HasSubstr(set.paths[1] + " was modified"));

  // Replaced by a rename (how WriteTokenShard and most tools write).
  ASSERT_TRUE(WriteTokenShard(set.paths[0], RandomTokens(100, 1000, 9)).ok());
  absl::Status replaced = stream->CheckUnchanged();
  EXPECT_EQ(replaced.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(replaced.message(), HasSubstr(set.paths[0] + " was removed or replaced"));
}

TEST(TokenStreamTest, AShrunkShardFailsReadsInsteadOfCrashing) {
  ScopedTempDir dir;
  const ShardSet set = WriteShards(dir, {1000});
  absl::StatusOr<TokenStream> stream = TokenStream::OpenShards(set.paths, 1000);
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_EQ(::truncate(set.paths[0].c_str(), kTokenShardHeaderBytes + 200), 0);
  std::vector<uint16_t> out(100);
  absl::Status read = stream->Read(500, 100, out.data());
  EXPECT_EQ(read.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.message(), HasSubstr("shrank"));
  EXPECT_THAT(stream->CheckUnchanged().message(), HasSubstr("(1224 bytes, was 3024)"));
}

TEST(TokenStreamTest, FingerprintsTellAReopenedShardFromItsRecord) {
  ScopedTempDir dir;
  const ShardSet set = WriteShards(dir, {500, 600});
  SetMtime(set.paths[0], 1700000000);
  absl::StatusOr<TokenStream> first = TokenStream::OpenShards(set.paths, 1000);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::vector<ShardFingerprint> recorded = first->fingerprints();
  ASSERT_EQ(recorded.size(), 2u);
  EXPECT_EQ(recorded[0].tokens, 500);
  EXPECT_EQ(recorded[0].bytes, kTokenShardHeaderBytes + 1000);
  EXPECT_EQ(recorded[0].mtime_unix_ns, int64_t{1700000000} * 1000000000);

  auto reopened = [&] {
    absl::StatusOr<TokenStream> again = TokenStream::OpenShards(set.paths, 1000);
    EXPECT_TRUE(again.ok()) << again.status();
    return again->fingerprints();
  };
  EXPECT_TRUE(CompareFingerprints(recorded, reopened(), "train").ok());

  // One token changed, the modification time put back: only the checksum tells.
  PokeToken(set.paths[0], 123, set.all[123] == 5 ? 6 : 5);
  SetMtime(set.paths[0], 1700000000);
  absl::Status changed = CompareFingerprints(recorded, reopened(), "train");
  EXPECT_EQ(changed.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(changed.message(), HasSubstr("train shard changed since the job first read it"));
  EXPECT_THAT(changed.message(), HasSubstr("sample checksum"));

  EXPECT_THAT(CompareFingerprints(recorded, {recorded[0]}, "val").message(),
              HasSubstr("val data: the job recorded 2 shards, found 1"));
}

TEST(TokenStreamTest, InMemoryStreamsHaveNoFilesToCheck) {
  const TokenStream stream = TokenStream::InMemory({4, 5, 6});
  EXPECT_EQ(stream.size(), 3);
  EXPECT_TRUE(stream.fingerprints().empty());
  EXPECT_TRUE(stream.CheckUnchanged().ok());
  uint16_t out[2];
  ASSERT_TRUE(stream.Read(1, 2, out).ok());
  EXPECT_EQ(out[0], 5);
  EXPECT_EQ(out[1], 6);
}

}  // namespace
}  // namespace resbm
