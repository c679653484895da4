#include "common/runtime/bulk_allocator.h"

#include <malloc.h>

namespace resbm {

bool KeepBulkBuffersMapped() {
  constexpr int kMiB = 1 << 20;
  bool ok = mallopt(M_MMAP_THRESHOLD, 32 * kMiB) == 1;
  ok = mallopt(M_TRIM_THRESHOLD, 256 * kMiB) == 1 && ok;
  // Fewer arenas, so a buffer freed on one of gRPC's threads serves the next message on
  // another: each arena keeps its own free blocks.
  ok = mallopt(M_ARENA_MAX, 2) == 1 && ok;
  return ok;
}

}  // namespace resbm
