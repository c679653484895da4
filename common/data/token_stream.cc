#include "common/data/token_stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/base/hash.h"
#include "common/data/token_shard.h"

namespace resbm {
namespace {

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// Reads exactly `size` bytes at `offset`; DataLoss at an early end of file.
absl::Status PreadFully(int fd, int64_t offset, size_t size, void* buffer,
                        const std::string& path) {
  char* out = static_cast<char*>(buffer);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(
          errno, absl::StrCat("token shard ", path, ": read failed at byte ", offset + done));
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrCat("token shard ", path, ": ends at byte ",
                                              offset + done, ", expected ", offset + size,
                                              " or more (it shrank since it was opened)"));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Little-endian on disk; `first` is the index in the shard of tokens[0], for the message.
absl::Status DecodeAndCheck(uint16_t* tokens, int64_t count, int64_t first, int64_t vocab_size,
                            const std::string& path) {
  for (int64_t i = 0; i < count; ++i) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    tokens[i] = static_cast<uint16_t>((tokens[i] >> 8) | (tokens[i] << 8));
#endif
    if (tokens[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token shard ", path, ": token ", first + i,
                                                     " has value ", tokens[i],
                                                     ", expected < vocab_size ", vocab_size));
    }
  }
  return absl::OkStatus();
}

// The token indexes of the sampled blocks' first tokens (each block kShardSampleBlockBytes / 2
// tokens, the last one ending at the shard's end); one block from 0 when they would cover it.
std::vector<int64_t> SampleStarts(int64_t tokens) {
  const int64_t block = kShardSampleBlockBytes / 2;
  if (tokens <= block * kShardSampleBlocks) {
    std::vector<int64_t> starts;
    for (int64_t t = 0; t < tokens; t += block) starts.push_back(t);
    return starts;
  }
  std::vector<int64_t> starts(kShardSampleBlocks);
  for (int64_t i = 0; i < kShardSampleBlocks; ++i) {
    starts[i] = i * (tokens - block) / (kShardSampleBlocks - 1);
  }
  return starts;
}

}  // namespace

bool ShardFingerprint::operator==(const ShardFingerprint& other) const {
  return path == other.path && bytes == other.bytes && tokens == other.tokens &&
         mtime_unix_ns == other.mtime_unix_ns && sample_checksum == other.sample_checksum;
}

absl::Status CompareFingerprints(const std::vector<ShardFingerprint>& recorded,
                                 const std::vector<ShardFingerprint>& now,
                                 const std::string& what) {
  if (recorded.size() != now.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " data: the job recorded ", recorded.size(), " shards, found ", now.size()));
  }
  for (size_t i = 0; i < now.size(); ++i) {
    const ShardFingerprint& a = recorded[i];
    const ShardFingerprint& b = now[i];
    if (a == b) continue;
    std::string how;
    if (a.path != b.path) {
      how = absl::StrCat("shard ", i, " was ", a.path, ", is ", b.path);
    } else if (a.bytes != b.bytes) {
      how = absl::StrCat(b.path, " has ", b.bytes, " bytes, the job recorded ", a.bytes);
    } else if (a.mtime_unix_ns != b.mtime_unix_ns) {
      how = absl::StrCat(b.path, " was modified at ", b.mtime_unix_ns,
                         " ns (Unix), the job recorded ", a.mtime_unix_ns);
    } else {
      how = absl::StrCat(b.path, " has sample checksum ", b.sample_checksum, ", the job recorded ",
                         a.sample_checksum);
    }
    return absl::FailedPreconditionError(
        absl::StrCat(what, " shard changed since the job first read it: ", how,
                     "; restore the original shard or submit a new job"));
  }
  return absl::OkStatus();
}

TokenStream TokenStream::InMemory(std::vector<uint16_t> tokens) {
  TokenStream stream;
  stream.size_ = static_cast<int64_t>(tokens.size());
  stream.memory_ = std::move(tokens);
  return stream;
}

absl::StatusOr<TokenStream> TokenStream::OpenShards(const std::vector<std::string>& paths,
                                                    int64_t vocab_size) {
  if (paths.empty()) {
    return absl::InvalidArgumentError("token shards: none given, expected at least one");
  }
  TokenStream stream;
  stream.vocab_size_ = vocab_size;
  for (const std::string& path : paths) {
    Shard shard;
    shard.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (shard.fd < 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("token shard ", path, ": cannot open"));
    }
    stream.shards_.push_back(shard);  // Owned from here: closed by the destructor.
    struct stat st;
    if (::fstat(shard.fd, &st) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("token shard ", path, ": cannot stat"));
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("token shard ", path, ": not a regular file, expected a shard file"));
    }
    std::string header(std::min<int64_t>(st.st_size, kTokenShardHeaderBytes), '\0');
    if (absl::Status s = PreadFully(shard.fd, 0, header.size(), header.data(), path); !s.ok()) {
      return s;
    }
    absl::StatusOr<int64_t> count = CheckTokenShardHeader(header, st.st_size, path);
    if (!count.ok()) return count.status();

    Shard& kept = stream.shards_.back();
    kept.begin = stream.size_;
    kept.device = st.st_dev;
    kept.inode = st.st_ino;
    kept.fingerprint = {path, static_cast<int64_t>(st.st_size), *count, MtimeNs(st), 0};
    uint64_t checksum = Fnv1a64(header.data(), header.size());
    std::vector<uint16_t> block(kShardSampleBlockBytes / 2);
    for (int64_t start : SampleStarts(*count)) {
      const int64_t n = std::min<int64_t>(static_cast<int64_t>(block.size()), *count - start);
      if (absl::Status s = stream.ReadShard(kept, start, n, block.data()); !s.ok()) return s;
      checksum = Fnv1a64(block.data(), static_cast<size_t>(n) * 2, checksum);
    }
    kept.fingerprint.sample_checksum = checksum;
    stream.size_ += *count;
  }
  return stream;
}

TokenStream::TokenStream(TokenStream&& other) noexcept { *this = std::move(other); }

TokenStream& TokenStream::operator=(TokenStream&& other) noexcept {
  if (this == &other) return *this;
  CloseAll();
  memory_ = std::move(other.memory_);
  shards_ = std::move(other.shards_);
  other.shards_.clear();
  vocab_size_ = other.vocab_size_;
  size_ = other.size_;
  other.size_ = 0;
  return *this;
}

TokenStream::~TokenStream() { CloseAll(); }

void TokenStream::CloseAll() {
  for (const Shard& shard : shards_) ::close(shard.fd);
  shards_.clear();
}

absl::Status TokenStream::ReadShard(const Shard& shard, int64_t first, int64_t count,
                                    uint16_t* out) const {
  const std::string& path = shard.fingerprint.path;
  absl::Status read = PreadFully(shard.fd, kTokenShardHeaderBytes + 2 * first,
                                 static_cast<size_t>(count) * 2, out, path);
  if (!read.ok()) return read;
  return DecodeAndCheck(out, count, first, vocab_size_, path);
}

absl::Status TokenStream::Read(int64_t offset, int64_t count, uint16_t* out) const {
  if (offset < 0 || count < 0 || offset + count > size_) {
    std::fprintf(stderr, "TokenStream::Read(%lld, %lld) outside [0, %lld)\n",
                 static_cast<long long>(offset), static_cast<long long>(count),
                 static_cast<long long>(size_));
    std::abort();
  }
  if (shards_.empty()) {
    std::copy_n(memory_.begin() + offset, count, out);
    return absl::OkStatus();
  }
  // The last shard that begins at or before `offset`.
  auto it = std::upper_bound(shards_.begin(), shards_.end(), offset,
                             [](int64_t value, const Shard& s) { return value < s.begin; });
  for (--it; count > 0; ++it) {
    const int64_t first = offset - it->begin;
    const int64_t n = std::min(count, it->fingerprint.tokens - first);
    if (absl::Status s = ReadShard(*it, first, n, out); !s.ok()) return s;
    offset += n;
    count -= n;
    out += n;
  }
  return absl::OkStatus();
}

std::vector<ShardFingerprint> TokenStream::fingerprints() const {
  std::vector<ShardFingerprint> out;
  out.reserve(shards_.size());
  for (const Shard& shard : shards_) out.push_back(shard.fingerprint);
  return out;
}

absl::Status TokenStream::CheckUnchanged() const {
  for (const Shard& shard : shards_) {
    const ShardFingerprint& f = shard.fingerprint;
    struct stat now;
    if (::stat(f.path.c_str(), &now) != 0 || now.st_dev != shard.device ||
        now.st_ino != shard.inode) {
      return absl::FailedPreconditionError(
          absl::StrCat("token shard ", f.path,
                       " was removed or replaced by another file since the job "
                       "opened it; restore the original shard or submit a new job"));
    }
    if (::fstat(shard.fd, &now) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("token shard ", f.path, ": cannot stat"));
    }
    std::string how;
    if (now.st_size != f.bytes) {
      how = absl::StrCat(now.st_size, " bytes, was ", f.bytes);
    } else if (MtimeNs(now) != f.mtime_unix_ns) {
      how = absl::StrCat("modification time ", MtimeNs(now), " ns, was ", f.mtime_unix_ns);
    }
    if (!how.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("token shard ", f.path, " was modified since the job opened it (", how,
                       "); restore the original shard or submit a new job"));
    }
  }
  return absl::OkStatus();
}

}  // namespace resbm
