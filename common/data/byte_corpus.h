// Reads plain files as a byte-level corpus (each byte one token, vocabulary 256) and decodes
// tokens back to text for printing samples. Free functions; the caller owns the results.
// Thread-safe: no shared state.
#ifndef RESBM_COMMON_DATA_BYTE_CORPUS_H_
#define RESBM_COMMON_DATA_BYTE_CORPUS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace resbm {

// Concatenates the bytes of `paths`, in order, one token (0..255) per byte. Each path is a file
// (symlinks followed) or a directory; a directory contributes every regular file directly in it,
// sorted by name, skipping symlinks and names ending ".dat" or ".u8" (Debian's fortune index files
// and UTF-8 aliases), and not descending into subdirectories. Errors: NotFound for a missing path,
// InvalidArgument for a path that is neither file nor directory or for an empty total, and the
// errno-derived code when a file cannot be read.
absl::StatusOr<std::vector<uint16_t>> ReadByteCorpus(const std::vector<std::string>& paths);

// Returns the bytes of `tokens` as a string; tokens above 255 become '?'.
std::string DecodeBytes(const std::vector<uint16_t>& tokens);

}  // namespace resbm

#endif  // RESBM_COMMON_DATA_BYTE_CORPUS_H_
