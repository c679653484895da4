// Fnv1a64: a small, dependency-free 64-bit checksum for checkpoint files and wire frames.
// It detects corruption, not tampering (authenticity is TLS's job). Thread-safe (pure).
#ifndef RESBM_COMMON_BASE_CHECKSUM_H_
#define RESBM_COMMON_BASE_CHECKSUM_H_

#include <cstddef>
#include <cstdint>

namespace resbm {

inline constexpr uint64_t kFnv1a64Seed = 0xcbf29ce484222325ULL;

// Continues an FNV-1a 64 hash over `size` bytes; start with kFnv1a64Seed.
inline uint64_t Fnv1a64(const void* data, size_t size, uint64_t hash = kFnv1a64Seed) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace resbm

#endif  // RESBM_COMMON_BASE_CHECKSUM_H_
