// Reads and writes token shards in the llm.c / modded-nanogpt format: a header of 256
// little-endian int32 ([0] magic 20240520, [1] version 1, [2] token count N, rest zero) followed
// by N little-endian uint16 tokens. Free functions; the caller owns the returned vector.
// Thread-safe: no shared state (concurrent writers of the same path race on the final rename).
#ifndef RESBM_COMMON_DATA_TOKEN_SHARD_H_
#define RESBM_COMMON_DATA_TOKEN_SHARD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace resbm {

inline constexpr int32_t kTokenShardMagic = 20240520;
inline constexpr int32_t kTokenShardVersion = 1;
inline constexpr int64_t kTokenShardHeaderInts = 256;
inline constexpr int64_t kTokenShardHeaderBytes = kTokenShardHeaderInts * 4;  // 1024

// Reads the whole shard at `path`. The header is validated against the file size before the
// token buffer is allocated. Errors: NotFound / PermissionDenied / ... (from errno) when the file
// cannot be opened or read; InvalidArgument for a truncated header, wrong magic, unsupported
// version, a count of zero or below, or a count that disagrees with the file size.
absl::StatusOr<std::vector<uint16_t>> ReadTokenShard(const std::string& path);

// The same checks and result for a shard already in memory; `source` names it in errors.
absl::StatusOr<std::vector<uint16_t>> ParseTokenShard(absl::string_view bytes,
                                                      const std::string& source);

// Checks the first kTokenShardHeaderBytes of a shard (`header`, shorter if the file is) against
// the whole file's size, as ReadTokenShard does, and returns the token count.
absl::StatusOr<int64_t> CheckTokenShardHeader(absl::string_view header, int64_t file_bytes,
                                              const std::string& source);

// Writes `tokens` to `path` atomically: a temporary file next to `path` is written, fsync'ed and
// renamed over `path`, then the directory is fsync'ed. Readers see either the old file or the
// complete new one. InvalidArgument if `tokens` is empty (a shard of zero tokens is unreadable)
// or holds more than INT32_MAX tokens.
absl::Status WriteTokenShard(const std::string& path, const std::vector<uint16_t>& tokens);

}  // namespace resbm

#endif  // RESBM_COMMON_DATA_TOKEN_SHARD_H_
