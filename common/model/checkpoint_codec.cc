#include "common/model/checkpoint_codec.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/file_io.h"
#include "common/base/hash.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

constexpr char kMagic[8] = {'R', 'E', 'S', 'B', 'M', 'C', 'K', '1'};
constexpr uint32_t kMaxNameLength = 4096;
constexpr uint32_t kMaxRank = 8;

// The format's dtype codes: only what stages store.
absl::StatusOr<uint8_t> DtypeCode(TensorDtype dtype, const std::string& name) {
  switch (dtype) {
    case TensorDtype::kFloat32:
      return 0;
    case TensorDtype::kFloat64:
      return 1;
    case TensorDtype::kInt64:
      return 2;
    case TensorDtype::kBFloat16:
      return 3;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", name, ": dtype ", SafetensorsDtypeName(dtype), " is not storable"));
  }
}

absl::StatusOr<TensorDtype> DtypeFromCode(uint8_t code) {
  switch (code) {
    case 0:
      return TensorDtype::kFloat32;
    case 1:
      return TensorDtype::kFloat64;
    case 2:
      return TensorDtype::kInt64;
    case 3:
      return TensorDtype::kBFloat16;
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
  // `data` and `path` (not owned) must outlive the reader.
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

 private:
  absl::Status Truncated(const char* what) const {
    return absl::DataLossError(absl::StrCat(path_, ": truncated at byte ", pos_, " reading ", what,
                                            " (file has ", data_.size(), " bytes)"));
  }
  absl::string_view data_;
  const std::string& path_;
  size_t pos_ = 0;
};

absl::StatusOr<RawTensor> DecodeTensor(Reader& reader, uint32_t index, uint64_t payload_size,
                                       const std::string& path) {
  RESBM_ASSIGN_OR_RETURN(const uint32_t name_len, reader.Get<uint32_t>("name length"));
  if (name_len > kMaxNameLength) {
    return absl::DataLossError(absl::StrCat(path, ": tensor ", index, " name length ", name_len,
                                            "; expected <= ", kMaxNameLength));
  }
  RawTensor tensor;
  RESBM_ASSIGN_OR_RETURN(const absl::string_view name, reader.Bytes(name_len, "name"));
  tensor.name = std::string(name);
  RESBM_ASSIGN_OR_RETURN(const uint8_t code, reader.Get<uint8_t>("dtype"));
  RESBM_ASSIGN_OR_RETURN(tensor.dtype, DtypeFromCode(code));
  RESBM_ASSIGN_OR_RETURN(const uint32_t rank, reader.Get<uint32_t>("rank"));
  if (rank > kMaxRank) {
    return absl::DataLossError(
        absl::StrCat(path, ": tensor ", tensor.name, " rank ", rank, "; expected <= ", kMaxRank));
  }
  uint64_t numel = 1;
  for (uint32_t d = 0; d < rank; ++d) {
    RESBM_ASSIGN_OR_RETURN(const int64_t dim, reader.Get<int64_t>("dims"));
    if (dim < 0 || static_cast<uint64_t>(dim) > payload_size) {
      return absl::DataLossError(
          absl::StrCat(path, ": tensor ", tensor.name, " dimension ", dim, " out of range"));
    }
    tensor.shape.push_back(dim);
    numel *= static_cast<uint64_t>(dim);
    if (numel > payload_size) {
      return absl::DataLossError(
          absl::StrCat(path, ": tensor ", tensor.name, " is larger than the file"));
    }
  }
  RESBM_ASSIGN_OR_RETURN(const uint64_t bytes, reader.Get<uint64_t>("byte count"));
  const uint64_t expected = numel * static_cast<uint64_t>(ElementSize(tensor.dtype));
  if (bytes != expected || bytes > reader.remaining()) {
    return absl::DataLossError(absl::StrCat(path, ": tensor ", tensor.name, " has ", bytes,
                                            " bytes; expected ", expected, " with ",
                                            reader.remaining(), " left in the file"));
  }
  RESBM_ASSIGN_OR_RETURN(const absl::string_view raw, reader.Bytes(bytes, "tensor data"));
  tensor.data = std::string(raw);
  return tensor;
}

}  // namespace

absl::StatusOr<std::string> CheckpointCodec::Encode(const CheckpointData& data) {
  std::string out(kMagic, sizeof(kMagic));
  Put<uint32_t>(&out, kVersion);
  Put<int64_t>(&out, data.stage);
  Put<int64_t>(&out, data.step);
  Put<uint32_t>(&out, static_cast<uint32_t>(data.tensors.size()));
  for (const RawTensor& tensor : data.tensors) {
    RESBM_ASSIGN_OR_RETURN(const uint8_t code, DtypeCode(tensor.dtype, tensor.name));
    const uint64_t expected = tensor.numel() * ElementSize(tensor.dtype);
    if (tensor.data.size() != expected || tensor.name.size() > kMaxNameLength ||
        tensor.shape.size() > kMaxRank) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", tensor.name, ": ", tensor.data.size(), " bytes for shape ",
                       ShapeString(tensor.shape), "; expected ", expected,
                       " (name <= ", kMaxNameLength, " characters, rank <= ", kMaxRank, ")"));
    }
    Put<uint32_t>(&out, static_cast<uint32_t>(tensor.name.size()));
    out.append(tensor.name);
    Put<uint8_t>(&out, code);
    Put<uint32_t>(&out, static_cast<uint32_t>(tensor.shape.size()));
    for (int64_t dim : tensor.shape) Put<int64_t>(&out, dim);
    Put<uint64_t>(&out, expected);
    out.append(tensor.data);
  }
  Put<uint64_t>(&out, Fnv1a64(out.data(), out.size()));
  return out;
}

absl::StatusOr<CheckpointData> CheckpointCodec::Decode(absl::string_view data,
                                                       const std::string& path) {
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
  // Everything but the trailing checksum.
  const absl::string_view payload = data.substr(0, body);
  Reader reader(payload, path);
  (void)reader.Bytes(sizeof(kMagic), "magic");
  RESBM_ASSIGN_OR_RETURN(const uint32_t version, reader.Get<uint32_t>("version"));
  if (version != kVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": version ", version, "; expected ", kVersion));
  }
  CheckpointData contents;
  RESBM_ASSIGN_OR_RETURN(contents.stage, reader.Get<int64_t>("stage"));
  RESBM_ASSIGN_OR_RETURN(contents.step, reader.Get<int64_t>("step"));
  RESBM_ASSIGN_OR_RETURN(const uint32_t count, reader.Get<uint32_t>("tensor count"));
  for (uint32_t i = 0; i < count; ++i) {
    RESBM_ASSIGN_OR_RETURN(RawTensor tensor, DecodeTensor(reader, i, payload.size(), path));
    contents.tensors.push_back(std::move(tensor));
  }
  if (reader.remaining() != 0) {
    return absl::DataLossError(
        absl::StrCat(path, ": ", reader.remaining(), " unexpected trailing bytes"));
  }
  return contents;
}

absl::Status CheckpointCodec::WriteFile(const std::string& path, const CheckpointData& data) {
  RESBM_ASSIGN_OR_RETURN(const std::string bytes, Encode(data));
  return WriteFileAtomically(path, bytes);
}

absl::StatusOr<CheckpointData> CheckpointCodec::ReadFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path, kMaxFileBytes);
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) {
      return absl::NotFoundError(absl::StrCat("checkpoint ", bytes.status().message()));
    }
    return bytes.status();
  }
  return Decode(*bytes, path);
}

}  // namespace resbm
