// KeepBulkBuffersMapped: tunes glibc's allocator for a process that moves megabyte messages
// (tensor frames, all-reduce pieces, states). By default glibc serves blocks above a
// threshold that adapts from 128 KiB with fresh mmaps and gives freed memory back at 128 KiB
// of slack, so every 1-4 MiB message is new pages the kernel must fault in and zero: measured
// (bench_transport, 2 replicas) as a third of the all-reduce's CPU in clear_page. With a
// fixed 32 MiB threshold, 256 MiB of slack before trimming and two arenas, those blocks are
// reused. Call once, first thing in main, before any threads start.
#ifndef RESBM_COMMON_RUNTIME_BULK_ALLOCATOR_H_
#define RESBM_COMMON_RUNTIME_BULK_ALLOCATOR_H_

namespace resbm {

// False when glibc refused a setting (the process then runs with its defaults).
bool KeepBulkBuffersMapped();

}  // namespace resbm

#endif  // RESBM_COMMON_RUNTIME_BULK_ALLOCATOR_H_
