// Small dependency-free hashes: Fnv1a64, the checksum of checkpoint files and wire frames
// (it detects corruption, not tampering: authenticity is TLS's job), and SplitMix64, the
// mixer behind seeded initialisation and data sampling. Pure functions; thread-safe.
#ifndef RESBM_COMMON_BASE_HASH_H_
#define RESBM_COMMON_BASE_HASH_H_

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

// The splitmix64 step (Steele, Lea, Flood 2014): add the golden-ratio increment, then
// finalize. A bijection on 64 bits with good avalanche.
inline constexpr uint64_t SplitMix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace resbm

#endif  // RESBM_COMMON_BASE_HASH_H_
