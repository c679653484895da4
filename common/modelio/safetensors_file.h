// SafetensorsFile: our writer and reader of the safetensors format (what Hugging Face tools
// load): a u64 little-endian header length N, N bytes of JSON {name: {"dtype", "shape",
// "data_offsets": [begin, end]}, "__metadata__": {string: string}} padded with spaces to a
// multiple of 8, then the tensors' raw little-endian bytes, contiguous and without holes
// (offsets count from the end of the header). The reader trusts nothing: every size, offset
// and dtype is checked against the file before a byte of data is read, and every refusal
// names the file, the tensor and what was expected. No LibTorch.
// A SafetensorsFile is an opened file's checked header (a value; thread-compatible); Read
// reopens the file for each tensor.
#ifndef RESBM_COMMON_MODELIO_SAFETENSORS_FILE_H_
#define RESBM_COMMON_MODELIO_SAFETENSORS_FILE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model/raw_tensor.h"

namespace resbm {

// One tensor of the header; [begin, end) is its byte range in the data section.
struct SafetensorsEntry {
  std::string name;
  TensorDtype dtype = TensorDtype::kFloat32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // The format's own limit on the header (100 MB).
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;
  static constexpr size_t kMaxRank = 8;
  static constexpr size_t kMaxNameLength = 1024;

  using Metadata = std::map<std::string, std::string>;

  // The whole file's bytes, tensors in the given order. InvalidArgument for an empty,
  // repeated or over-long name, a data size that does not match its shape and dtype.
  static absl::StatusOr<std::string> Serialize(const std::vector<RawTensor>& tensors,
                                               const Metadata& metadata = {});
  // Serialize, then an atomic write.
  static absl::Status Write(const std::string& path, const std::vector<RawTensor>& tensors,
                            const Metadata& metadata = {});

  // Checks the header of a file of `file_size` bytes that begins with `prefix` (at least the
  // length and the header; more is ignored). DataLoss naming `path` for a malformed file.
  static absl::StatusOr<SafetensorsFile> ParseHeader(absl::string_view prefix, uint64_t file_size,
                                                     const std::string& path);
  // Every tensor of a file held in memory, in file order.
  static absl::StatusOr<std::vector<RawTensor>> ParseAll(absl::string_view bytes,
                                                         const std::string& path);

  // Reads and checks the header of `path` (NotFound when it cannot be opened).
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);

  // In file order.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const Metadata& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  // Null when the file has no tensor of that name.
  const SafetensorsEntry* Find(absl::string_view name) const;

  // One tensor's bytes, read from the file Open checked (NotFound for an unknown name,
  // DataLoss when the file has changed size since).
  absl::StatusOr<RawTensor> Read(absl::string_view name) const;
  absl::StatusOr<std::vector<RawTensor>> ReadAll() const;

 private:
  std::string path_;
  uint64_t data_offset_ = 0;  // 8 + header length.
  uint64_t file_size_ = 0;
  std::vector<SafetensorsEntry> entries_;
  Metadata metadata_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODELIO_SAFETENSORS_FILE_H_
