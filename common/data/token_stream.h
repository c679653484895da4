// TokenStream: an immutable sequence of tokens, either held in memory or concatenated from
// llm.c token shards that stay on disk and are read on demand (pread into the caller's
// buffer), so a corpus far larger than RAM costs a file descriptor per shard, not its bytes.
// Each shard's identity at open (size, modification time, a checksum of sampled blocks) is
// kept, so a shard that changes under a running job is detected instead of silently read.
// Move-only (owns the descriptors). Thread-safe: every method is const and pread keeps no
// file offset.
#ifndef RESBM_COMMON_DATA_TOKEN_STREAM_H_
#define RESBM_COMMON_DATA_TOKEN_STREAM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace resbm {

// What a shard was when a job first read it; equal fingerprints mean the same data unless a
// writer kept the size and the modification time and changed no sampled block.
struct ShardFingerprint {
  std::string path;
  int64_t bytes = 0;
  int64_t tokens = 0;
  int64_t mtime_unix_ns = 0;
  // Fnv1a64 of the header and of up to kShardSampleBlocks blocks of kShardSampleBlockBytes
  // spread evenly over the payload (every byte of a shard smaller than that).
  uint64_t sample_checksum = 0;

  bool operator==(const ShardFingerprint& other) const;
  bool operator!=(const ShardFingerprint& other) const { return !(*this == other); }
};

inline constexpr int64_t kShardSampleBlocks = 256;
inline constexpr int64_t kShardSampleBlockBytes = 4096;

// OK if `now` lists the same shards as `recorded`, in order, with equal fingerprints;
// FailedPrecondition otherwise, naming the first shard that differs and how (`what` names the
// split in the message, e.g. "train").
absl::Status CompareFingerprints(const std::vector<ShardFingerprint>& recorded,
                                 const std::vector<ShardFingerprint>& now, const std::string& what);

class TokenStream {
 public:
  // Tokens held in memory (byte corpora, tests).
  static TokenStream InMemory(std::vector<uint16_t> tokens);

  // Opens `paths` in order as one stream. Each header is validated as ReadTokenShard does;
  // the sampled blocks are read to fingerprint the shard and are checked against
  // `vocab_size` (so a small shard is checked whole, a large one on every later Read).
  // InvalidArgument for an empty list, a bad header or a token >= vocab_size (naming the
  // file, the token index in it and the value); the errno-derived code when a file cannot be
  // opened or read.
  static absl::StatusOr<TokenStream> OpenShards(const std::vector<std::string>& paths,
                                                int64_t vocab_size);

  TokenStream(TokenStream&&) noexcept;
  TokenStream& operator=(TokenStream&&) noexcept;
  TokenStream(const TokenStream&) = delete;
  TokenStream& operator=(const TokenStream&) = delete;
  ~TokenStream();

  int64_t size() const { return size_; }

  // Copies tokens [offset, offset + count) to `out`, across shard boundaries. Requires
  // 0 <= offset and offset + count <= size() (aborts otherwise: a caller bug). DataLoss when a
  // shard is shorter than it was at open; InvalidArgument for a token >= vocab_size.
  absl::Status Read(int64_t offset, int64_t count, uint16_t* out) const;

  // The fingerprints taken at open, one per shard in order; empty for an in-memory stream.
  std::vector<ShardFingerprint> fingerprints() const;

  // FailedPrecondition if a shard's path now names another file, or the open file's size or
  // modification time differ from the fingerprint (two stat calls per shard, no reads).
  absl::Status CheckUnchanged() const;

 private:
  struct Shard {
    int fd = -1;
    int64_t begin = 0;  // Index of its first token in the stream.
    uint64_t device = 0;
    uint64_t inode = 0;
    ShardFingerprint fingerprint;
  };

  TokenStream() = default;
  absl::Status ReadShard(const Shard& shard, int64_t first, int64_t count, uint16_t* out) const;
  void CloseAll();

  std::vector<uint16_t> memory_;
  std::vector<Shard> shards_;
  int64_t vocab_size_ = 65536;
  int64_t size_ = 0;
};

}  // namespace resbm

#endif  // RESBM_COMMON_DATA_TOKEN_STREAM_H_
