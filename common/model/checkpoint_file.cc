#include "common/model/checkpoint_file.h"

#include <fcntl.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/base/hash.h"

namespace resbm {
namespace {

constexpr char kMagic[8] = {'R', 'E', 'S', 'B', 'M', 'C', 'K', '1'};
constexpr uint32_t kMaxNameLength = 4096;
constexpr uint32_t kMaxRank = 8;

enum class StoredDtype : uint8_t { kFloat32 = 0, kFloat64 = 1, kInt64 = 2, kBFloat16 = 3 };

absl::StatusOr<StoredDtype> ToStored(torch::ScalarType type, const std::string& name) {
  switch (type) {
    case torch::kFloat32:
      return StoredDtype::kFloat32;
    case torch::kFloat64:
      return StoredDtype::kFloat64;
    case torch::kInt64:
      return StoredDtype::kInt64;
    case torch::kBFloat16:
      return StoredDtype::kBFloat16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", name, ": dtype ", c10::toString(type), " is not storable"));
  }
}

absl::StatusOr<torch::ScalarType> FromStored(uint8_t code) {
  switch (static_cast<StoredDtype>(code)) {
    case StoredDtype::kFloat32:
      return torch::kFloat32;
    case StoredDtype::kFloat64:
      return torch::kFloat64;
    case StoredDtype::kInt64:
      return torch::kInt64;
    case StoredDtype::kBFloat16:
      return torch::kBFloat16;
  }
  return absl::DataLossError(absl::StrCat("dtype code ", int{code}, "; expected 0..3"));
}

template <typename T>
void Put(std::string* out, T value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(T));
}

// A bounds-checked cursor over the file's bytes.
class Reader {
 public:
  // `data` (not owned) must outlive the reader.
  Reader(absl::string_view data, const std::string& path) : data_(data), path_(path) {}

  template <typename T>
  absl::StatusOr<T> Get(const char* what) {
    if (remaining() < sizeof(T)) return Truncated(what);
    T value;
    std::memcpy(&value, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  // A view into the data, valid as long as the data.
  absl::StatusOr<absl::string_view> Bytes(uint64_t size, const char* what) {
    if (remaining() < size) return Truncated(what);
    absl::string_view out = data_.substr(pos_, size);
    pos_ += size;
    return out;
  }

  size_t remaining() const { return data_.size() - pos_; }
  size_t pos() const { return pos_; }

 private:
  absl::Status Truncated(const char* what) const {
    return absl::DataLossError(absl::StrCat(path_, ": truncated at byte ", pos_, " reading ", what,
                                            " (file has ", data_.size(), " bytes)"));
  }
  absl::string_view data_;
  const std::string& path_;
  size_t pos_ = 0;
};

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status WriteAllAndSync(const std::string& path, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("open", path);
  size_t written = 0;
  while (written < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return ErrnoError("write", path);
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return ErrnoError("fsync", path);
  }
  if (::close(fd) != 0) return ErrnoError("close", path);
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckpointFile::Write(const std::string& path, const CheckpointContents& contents) {
  std::string out(kMagic, sizeof(kMagic));
  Put<uint32_t>(&out, kVersion);
  Put<int64_t>(&out, contents.stage);
  Put<int64_t>(&out, contents.step);
  Put<uint32_t>(&out, static_cast<uint32_t>(contents.tensors.size()));
  for (const auto& [name, tensor] : contents.tensors) {
    auto stored = ToStored(tensor.scalar_type(), name);
    if (!stored.ok()) return stored.status();
    auto host = tensor.detach().to(torch::kCPU).contiguous();
    Put<uint32_t>(&out, static_cast<uint32_t>(name.size()));
    out.append(name);
    Put<uint8_t>(&out, static_cast<uint8_t>(*stored));
    Put<uint32_t>(&out, static_cast<uint32_t>(host.dim()));
    for (int64_t dim : host.sizes()) Put<int64_t>(&out, dim);
    const uint64_t bytes = host.numel() * host.element_size();
    Put<uint64_t>(&out, bytes);
    out.append(static_cast<const char*>(host.data_ptr()), bytes);
  }
  Put<uint64_t>(&out, Fnv1a64(out.data(), out.size()));

  const std::string temp = absl::StrCat(path, ".tmp.", ::getpid());
  auto status = WriteAllAndSync(temp, out);
  if (!status.ok()) return status;
  if (::rename(temp.c_str(), path.c_str()) != 0) return ErrnoError("rename to", path);
  // Persist the rename itself.
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  int dir_fd = ::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckpointContents> CheckpointFile::Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("checkpoint ", path, ": cannot open"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string data = buffer.str();

  if (data.size() < sizeof(kMagic) + sizeof(uint64_t) ||
      std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a ResBM checkpoint (bad magic)"));
  }
  const size_t body = data.size() - sizeof(uint64_t);
  uint64_t stored_sum;
  std::memcpy(&stored_sum, data.data() + body, sizeof(stored_sum));
  if (Fnv1a64(data.data(), body) != stored_sum) {
    return absl::DataLossError(absl::StrCat(path, ": checksum mismatch (corrupt file)"));
  }
  // Everything but the trailing checksum, without copying the file again.
  const absl::string_view payload(data.data(), body);
  Reader reader(payload, path);
  (void)reader.Bytes(sizeof(kMagic), "magic");
  auto version = reader.Get<uint32_t>("version");
  if (!version.ok()) return version.status();
  if (*version != kVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": version ", *version, "; expected ", kVersion));
  }
  CheckpointContents contents;
  auto stage = reader.Get<int64_t>("stage");
  auto step = reader.Get<int64_t>("step");
  auto count = reader.Get<uint32_t>("tensor count");
  if (!stage.ok()) return stage.status();
  if (!step.ok()) return step.status();
  if (!count.ok()) return count.status();
  contents.stage = *stage;
  contents.step = *step;
  for (uint32_t i = 0; i < *count; ++i) {
    auto name_len = reader.Get<uint32_t>("name length");
    if (!name_len.ok()) return name_len.status();
    if (*name_len > kMaxNameLength) {
      return absl::DataLossError(absl::StrCat(path, ": tensor ", i, " name length ", *name_len,
                                              "; expected <= ", kMaxNameLength));
    }
    auto name = reader.Bytes(*name_len, "name");
    auto code = reader.Get<uint8_t>("dtype");
    auto rank = reader.Get<uint32_t>("rank");
    if (!name.ok()) return name.status();
    if (!code.ok()) return code.status();
    if (!rank.ok()) return rank.status();
    auto dtype = FromStored(*code);
    if (!dtype.ok()) return dtype.status();
    if (*rank > kMaxRank) {
      return absl::DataLossError(
          absl::StrCat(path, ": tensor ", *name, " rank ", *rank, "; expected <= ", kMaxRank));
    }
    std::vector<int64_t> dims;
    uint64_t numel = 1;
    for (uint32_t d = 0; d < *rank; ++d) {
      auto dim = reader.Get<int64_t>("dims");
      if (!dim.ok()) return dim.status();
      if (*dim < 0 || static_cast<uint64_t>(*dim) > payload.size()) {
        return absl::DataLossError(
            absl::StrCat(path, ": tensor ", *name, " dimension ", *dim, " out of range"));
      }
      dims.push_back(*dim);
      numel *= static_cast<uint64_t>(*dim);
      if (numel > payload.size()) {
        return absl::DataLossError(
            absl::StrCat(path, ": tensor ", *name, " is larger than the file"));
      }
    }
    auto bytes = reader.Get<uint64_t>("byte count");
    if (!bytes.ok()) return bytes.status();
    const uint64_t expected = numel * c10::elementSize(*dtype);
    if (*bytes != expected || *bytes > reader.remaining()) {
      return absl::DataLossError(absl::StrCat(path, ": tensor ", *name, " has ", *bytes,
                                              " bytes; expected ", expected, " with ",
                                              reader.remaining(), " left in the file"));
    }
    auto tensor = torch::empty(dims, *dtype);
    auto raw = reader.Bytes(*bytes, "tensor data");
    if (!raw.ok()) return raw.status();
    std::memcpy(tensor.data_ptr(), raw->data(), raw->size());
    contents.tensors.emplace_back(std::string(*name), tensor);
  }
  if (reader.remaining() != 0) {
    return absl::DataLossError(
        absl::StrCat(path, ": ", reader.remaining(), " unexpected trailing bytes"));
  }
  return contents;
}

}  // namespace resbm
