#include "common/data/token_shard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace resbm {
namespace {

// Closes a file descriptor when it goes out of scope.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;

  int get() const { return fd_; }
  // Gives up ownership; the caller closes the descriptor.
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

bool HostIsBigEndian() {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return true;
#else
  return false;
#endif
}

int32_t DecodeLittleEndianInt32(const unsigned char* p) {
  uint32_t v = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
               (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
  return static_cast<int32_t>(v);
}

void EncodeLittleEndianInt32(int32_t value, unsigned char* p) {
  uint32_t v = static_cast<uint32_t>(value);
  p[0] = static_cast<unsigned char>(v);
  p[1] = static_cast<unsigned char>(v >> 8);
  p[2] = static_cast<unsigned char>(v >> 16);
  p[3] = static_cast<unsigned char>(v >> 24);
}

void SwapBytes(std::vector<uint16_t>* tokens) {
  for (uint16_t& t : *tokens) t = static_cast<uint16_t>((t >> 8) | (t << 8));
}

// Reads exactly `size` bytes at the current offset of `fd`, retrying short reads and EINTR.
absl::Status ReadFully(int fd, void* buffer, size_t size, const std::string& path) {
  char* out = static_cast<char*>(buffer);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::read(fd, out + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(
          errno, absl::StrCat("token shard ", path, ": read failed at byte ", done, " of ", size));
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrCat("token shard ", path,
                                              ": unexpected end of file at byte ", done,
                                              ", expected ", size, " bytes"));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status WriteFully(int fd, const void* buffer, size_t size, const std::string& path) {
  const char* in = static_cast<const char*>(buffer);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, in + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("token shard ", path, ": write failed after ",
                                                     done, " of ", size, " bytes"));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status WriteShardFile(int fd, const std::string& tmp_path,
                            const std::vector<uint16_t>& tokens) {
  unsigned char header[kTokenShardHeaderBytes] = {};
  EncodeLittleEndianInt32(kTokenShardMagic, header);
  EncodeLittleEndianInt32(kTokenShardVersion, header + 4);
  EncodeLittleEndianInt32(static_cast<int32_t>(tokens.size()), header + 8);
  absl::Status status = WriteFully(fd, header, sizeof(header), tmp_path);
  if (!status.ok()) return status;
  if (HostIsBigEndian()) {
    std::vector<uint16_t> swapped = tokens;
    SwapBytes(&swapped);
    status = WriteFully(fd, swapped.data(), swapped.size() * sizeof(uint16_t), tmp_path);
  } else {
    status = WriteFully(fd, tokens.data(), tokens.size() * sizeof(uint16_t), tmp_path);
  }
  if (!status.ok()) return status;
  if (::fsync(fd) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("token shard ", tmp_path, ": fsync failed"));
  }
  return absl::OkStatus();
}

std::string DirectoryOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Checks a shard's header against the size of the whole shard (`total_bytes`) before anything
// is allocated, so a corrupt count cannot make a reader allocate gigabytes. Returns the count.
absl::StatusOr<int32_t> CheckHeader(const unsigned char* header, int64_t total_bytes,
                                    const std::string& source) {
  const int32_t magic = DecodeLittleEndianInt32(header);
  const int32_t version = DecodeLittleEndianInt32(header + 4);
  const int32_t count = DecodeLittleEndianInt32(header + 8);
  if (magic != kTokenShardMagic) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token shard ", source, ": wrong magic: expected ", kTokenShardMagic, ", got ", magic));
  }
  if (version != kTokenShardVersion) {
    return absl::InvalidArgumentError(absl::StrCat("token shard ", source,
                                                   ": unsupported version: expected ",
                                                   kTokenShardVersion, ", got ", version));
  }
  if (count <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token shard ", source, ": header token count is ", count, ", expected at least 1"));
  }
  const int64_t payload_bytes = total_bytes - kTokenShardHeaderBytes;
  const int64_t expected_payload = static_cast<int64_t>(count) * 2;
  if (payload_bytes != expected_payload) {
    return absl::InvalidArgumentError(
        absl::StrCat("token shard ", source, ": token count mismatch: header says ", count,
                     " tokens (", expected_payload, " payload bytes) but the file has ",
                     payload_bytes, " payload bytes, which implies ", payload_bytes / 2, " tokens",
                     payload_bytes % 2 != 0 ? " and an odd trailing byte" : ""));
  }
  return count;
}

absl::Status CheckHeaderSize(int64_t total_bytes, const std::string& source) {
  if (total_bytes >= kTokenShardHeaderBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("token shard ", source, ": truncated header: file has ", total_bytes,
                   " bytes, expected at least ", kTokenShardHeaderBytes));
}

}  // namespace

absl::StatusOr<int64_t> CheckTokenShardHeader(absl::string_view header, int64_t file_bytes,
                                              const std::string& source) {
  if (absl::Status status = CheckHeaderSize(static_cast<int64_t>(header.size()), source);
      !status.ok()) {
    return status;
  }
  return CheckHeader(reinterpret_cast<const unsigned char*>(header.data()), file_bytes, source);
}

absl::StatusOr<std::vector<uint16_t>> ParseTokenShard(absl::string_view bytes,
                                                      const std::string& source) {
  const int64_t total = static_cast<int64_t>(bytes.size());
  if (absl::Status status = CheckHeaderSize(total, source); !status.ok()) return status;
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  absl::StatusOr<int32_t> count = CheckHeader(data, total, source);
  if (!count.ok()) return count.status();
  std::vector<uint16_t> tokens(static_cast<size_t>(*count));
  const unsigned char* payload = data + kTokenShardHeaderBytes;
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<uint16_t>(payload[2 * i] | (payload[2 * i + 1] << 8));
  }
  return tokens;
}

absl::StatusOr<std::vector<uint16_t>> ReadTokenShard(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("token shard ", path, ": cannot open"));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("token shard ", path, ": cannot stat"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("token shard ", path, ": not a regular file, expected a shard file"));
  }
  const int64_t file_bytes = static_cast<int64_t>(st.st_size);
  if (absl::Status status = CheckHeaderSize(file_bytes, path); !status.ok()) return status;

  unsigned char header[kTokenShardHeaderBytes];
  absl::Status status = ReadFully(fd.get(), header, sizeof(header), path);
  if (!status.ok()) return status;
  absl::StatusOr<int32_t> count = CheckHeader(header, file_bytes, path);
  if (!count.ok()) return count.status();

  std::vector<uint16_t> tokens(static_cast<size_t>(*count));
  status = ReadFully(fd.get(), tokens.data(), tokens.size() * sizeof(uint16_t), path);
  if (!status.ok()) return status;
  if (HostIsBigEndian()) SwapBytes(&tokens);
  return tokens;
}

absl::Status WriteTokenShard(const std::string& path, const std::vector<uint16_t>& tokens) {
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token shard ", path, ": 0 tokens to write, expected at least 1"));
  }
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat("token shard ", path, ": ", tokens.size(),
                                                   " tokens to write, expected at most ",
                                                   std::numeric_limits<int32_t>::max()));
  }

  std::string tmp_path = path + ".tmp.XXXXXX";
  ScopedFd fd(::mkstemp(tmp_path.data()));
  if (fd.get() < 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("token shard ", path, ": cannot create temporary file ", tmp_path));
  }
  // mkstemp creates the file 0600; give it the usual permissions of a data file.
  ::fchmod(fd.get(), 0644);
  absl::Status status = WriteShardFile(fd.get(), tmp_path, tokens);
  if (status.ok() && ::close(fd.release()) != 0) {
    status = absl::ErrnoToStatus(errno, absl::StrCat("token shard ", tmp_path, ": close failed"));
  }
  if (status.ok() && ::rename(tmp_path.c_str(), path.c_str()) != 0) {
    status = absl::ErrnoToStatus(
        errno, absl::StrCat("token shard ", path, ": cannot rename ", tmp_path, " over it"));
  }
  if (!status.ok()) {
    ::unlink(tmp_path.c_str());
    return status;
  }

  // Make the rename itself durable.
  const std::string dir = DirectoryOf(path);
  ScopedFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0 || ::fsync(dir_fd.get()) != 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("token shard ", path, ": cannot fsync directory ", dir));
  }
  return absl::OkStatus();
}

}  // namespace resbm
