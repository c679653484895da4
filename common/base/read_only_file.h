// ReadOnlyFile: an open regular file read at offsets (pread), for readers that must check a
// file's size and header before they read or allocate the rest. Owns the descriptor
// (closed on destruction); move-only. Reads are thread-safe (pread keeps no position).
#ifndef RESBM_COMMON_BASE_READ_ONLY_FILE_H_
#define RESBM_COMMON_BASE_READ_ONLY_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace resbm {

class ReadOnlyFile {
 public:
  // NotFound (naming the path and errno) when it cannot be opened; FailedPrecondition when
  // it is not a regular file.
  static absl::StatusOr<ReadOnlyFile> Open(const std::string& path);

  ReadOnlyFile(ReadOnlyFile&& other) noexcept;
  ReadOnlyFile& operator=(ReadOnlyFile&& other) noexcept;
  ReadOnlyFile(const ReadOnlyFile&) = delete;
  ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;
  ~ReadOnlyFile();

  // The size when opened.
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // `size` bytes from `offset`. DataLoss when the file has fewer (it shrank, or the range is
  // past its end).
  absl::StatusOr<std::string> ReadAt(uint64_t offset, uint64_t size) const;

 private:
  ReadOnlyFile(int fd, uint64_t size, std::string path)
      : fd_(fd), size_(size), path_(std::move(path)) {}

  int fd_ = -1;
  uint64_t size_ = 0;
  std::string path_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_BASE_READ_ONLY_FILE_H_
