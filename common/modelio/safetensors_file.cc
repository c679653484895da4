#include "common/modelio/safetensors_file.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/base/file_io.h"
#include "common/base/read_only_file.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

using Json = nlohmann::json;

constexpr char kMetadataKey[] = "__metadata__";

absl::Status Corrupt(const std::string& path, absl::string_view detail) {
  return absl::DataLossError(absl::StrCat(path, ": ", detail));
}

uint64_t ReadU64(absl::string_view bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

void AppendU64(std::string* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// One header entry, checked on its own: dtype, shape and a range whose size matches them.
absl::StatusOr<SafetensorsEntry> ParseEntry(const std::string& name, const Json& value,
                                            uint64_t data_size, const std::string& path) {
  const std::string where = absl::StrCat("tensor '", name, "'");
  if (name.empty() || name.size() > SafetensorsFile::kMaxNameLength) {
    return Corrupt(path, absl::StrCat("a tensor name of ", name.size(), " characters; expected 1..",
                                      SafetensorsFile::kMaxNameLength));
  }
  if (!value.is_object()) return Corrupt(path, where + " is not a JSON object");
  SafetensorsEntry entry;
  entry.name = name;
  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) {
    return Corrupt(path, where + ": dtype missing; expected a string such as \"F32\"");
  }
  const auto parsed_dtype = SafetensorsDtypeFromName(dtype->get_ref<const std::string&>());
  if (!parsed_dtype) {
    return Corrupt(path, absl::StrCat(where, ": dtype \"", dtype->get_ref<const std::string&>(),
                                      "\"; expected F32, F64, BF16, F16, I64, I32 or U8"));
  }
  entry.dtype = *parsed_dtype;
  const auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array() || shape->size() > SafetensorsFile::kMaxRank) {
    return Corrupt(path, absl::StrCat(where, ": shape missing or not an array of at most ",
                                      SafetensorsFile::kMaxRank, " dimensions"));
  }
  uint64_t numel = 1;
  for (const Json& dim : *shape) {
    if (!dim.is_number_unsigned() || dim.get<uint64_t>() > data_size) {
      return Corrupt(path, absl::StrCat(where, ": shape ", shape->dump(),
                                        "; expected non-negative dimensions within the file"));
    }
    entry.shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
    numel *= dim.get<uint64_t>();
    if (numel > data_size) {
      return Corrupt(path, absl::StrCat(where, ": shape ", shape->dump(), " needs more than the ",
                                        data_size, " data bytes of the file"));
    }
  }
  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    return Corrupt(path, where + ": data_offsets missing; expected [begin, end]");
  }
  entry.begin = (*offsets)[0].get<uint64_t>();
  entry.end = (*offsets)[1].get<uint64_t>();
  const uint64_t bytes = numel * static_cast<uint64_t>(ElementSize(entry.dtype));
  if (entry.begin > entry.end || entry.end > data_size || entry.end - entry.begin != bytes) {
    return Corrupt(
        path,
        absl::StrCat(where, ": data_offsets [", entry.begin, ", ", entry.end, "] for ", bytes,
                     " bytes (", SafetensorsDtypeName(entry.dtype), " ", ShapeString(entry.shape),
                     "); expected a range of ", "that size within the ", data_size, " data bytes"));
  }
  return entry;
}

absl::StatusOr<SafetensorsFile::Metadata> ParseMetadata(const Json& value,
                                                        const std::string& path) {
  if (!value.is_object()) return Corrupt(path, "__metadata__ is not a JSON object");
  SafetensorsFile::Metadata metadata;
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it->is_string()) {
      return Corrupt(path, absl::StrCat("__metadata__.", it.key(), " is not a string"));
    }
    metadata[it.key()] = it->get<std::string>();
  }
  return metadata;
}

// The ranges, in file order, must tile the data section exactly.
absl::Status CheckContiguous(std::vector<SafetensorsEntry>& entries, uint64_t data_size,
                             const std::string& path) {
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const SafetensorsEntry& entry : entries) {
    if (entry.begin != cursor) {
      return Corrupt(
          path,
          absl::StrCat("tensor '", entry.name, "' starts at data byte ", entry.begin, "; expected ",
                       cursor, " (tensors must be contiguous, without holes or overlaps)"));
    }
    cursor = entry.end;
  }
  if (cursor != data_size) {
    return Corrupt(path, absl::StrCat("tensors end at data byte ", cursor, " of ", data_size,
                                      "; expected no trailing bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> SafetensorsFile::Serialize(const std::vector<RawTensor>& tensors,
                                                       const Metadata& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const RawTensor& tensor : tensors) {
    const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * ElementSize(tensor.dtype);
    if (tensor.name.empty() || tensor.name.size() > kMaxNameLength || tensor.name == kMetadataKey ||
        !names.insert(tensor.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor name '", tensor.name, "': expected a unique name of 1..",
                       kMaxNameLength, " characters other than ", kMetadataKey));
    }
    if (tensor.data.size() != bytes || tensor.shape.size() > kMaxRank) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", tensor.name,
                                                     "': ", tensor.data.size(), " bytes; expected ",
                                                     bytes, " for ", ShapeString(tensor.shape)));
    }
    header[tensor.name] = {{"dtype", SafetensorsDtypeName(tensor.dtype)},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // Names or metadata that are not UTF-8.
    return absl::InvalidArgumentError(absl::StrCat("safetensors header: ", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + text.size() + offset);
  AppendU64(&out, text.size());
  out.append(text);
  for (const RawTensor& tensor : tensors) out.append(tensor.data);
  return out;
}

absl::Status SafetensorsFile::Write(const std::string& path, const std::vector<RawTensor>& tensors,
                                    const Metadata& metadata) {
  RESBM_ASSIGN_OR_RETURN(const std::string bytes, Serialize(tensors, metadata));
  return WriteFileAtomically(path, bytes);
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::ParseHeader(absl::string_view prefix,
                                                             uint64_t file_size,
                                                             const std::string& path) {
  if (file_size < 8 || prefix.size() < 8) {
    return Corrupt(path, absl::StrCat(file_size, " bytes; expected at least the 8-byte header ",
                                      "length of a safetensors file"));
  }
  const uint64_t header_size = ReadU64(prefix);
  if (header_size > kMaxHeaderBytes || header_size > file_size - 8) {
    return Corrupt(path, absl::StrCat("header length ", header_size, " in a file of ", file_size,
                                      " bytes; expected at most ",
                                      std::min<uint64_t>(kMaxHeaderBytes, file_size - 8)));
  }
  if (prefix.size() < 8 + header_size) {
    return absl::InternalError(absl::StrCat(path, ": header not read in full"));
  }
  const absl::string_view text = prefix.substr(8, header_size);
  const Json header = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Corrupt(path, "header is not a JSON object");
  }
  SafetensorsFile file;
  file.path_ = path;
  file.data_offset_ = 8 + header_size;
  file.file_size_ = file_size;
  const uint64_t data_size = file_size - file.data_offset_;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == kMetadataKey) {
      RESBM_ASSIGN_OR_RETURN(file.metadata_, ParseMetadata(*it, path));
      continue;
    }
    RESBM_ASSIGN_OR_RETURN(SafetensorsEntry entry, ParseEntry(it.key(), *it, data_size, path));
    file.entries_.push_back(std::move(entry));
  }
  RESBM_RETURN_IF_ERROR(CheckContiguous(file.entries_, data_size, path));
  return file;
}

absl::StatusOr<std::vector<RawTensor>> SafetensorsFile::ParseAll(absl::string_view bytes,
                                                                 const std::string& path) {
  RESBM_ASSIGN_OR_RETURN(const SafetensorsFile file, ParseHeader(bytes, bytes.size(), path));
  std::vector<RawTensor> tensors;
  for (const SafetensorsEntry& entry : file.entries_) {
    RawTensor tensor;
    tensor.name = entry.name;
    tensor.dtype = entry.dtype;
    tensor.shape = entry.shape;
    tensor.data =
        std::string(bytes.substr(file.data_offset_ + entry.begin, entry.end - entry.begin));
    tensors.push_back(std::move(tensor));
  }
  return tensors;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  RESBM_ASSIGN_OR_RETURN(const ReadOnlyFile file, ReadOnlyFile::Open(path));
  // The length first; a length past the file is refused by ParseHeader before anything is
  // allocated for the header.
  RESBM_ASSIGN_OR_RETURN(std::string prefix, file.ReadAt(0, std::min<uint64_t>(8, file.size())));
  if (prefix.size() == 8) {
    const uint64_t header_size = ReadU64(prefix);
    if (header_size <= kMaxHeaderBytes && header_size <= file.size() - 8) {
      RESBM_ASSIGN_OR_RETURN(prefix, file.ReadAt(0, 8 + header_size));
    }
  }
  return ParseHeader(prefix, file.size(), path);
}

const SafetensorsEntry* SafetensorsFile::Find(absl::string_view name) const {
  for (const SafetensorsEntry& entry : entries_) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

absl::StatusOr<RawTensor> SafetensorsFile::Read(absl::string_view name) const {
  const SafetensorsEntry* entry = Find(name);
  if (entry == nullptr) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor '", name, "'"));
  }
  RESBM_ASSIGN_OR_RETURN(const ReadOnlyFile file, ReadOnlyFile::Open(path_));
  if (file.size() != file_size_) {
    return Corrupt(path_, absl::StrCat("the file changed size since its header was read (",
                                       file_size_, " bytes then, ", file.size(), " now)"));
  }
  RawTensor tensor;
  tensor.name = entry->name;
  tensor.dtype = entry->dtype;
  tensor.shape = entry->shape;
  RESBM_ASSIGN_OR_RETURN(tensor.data,
                         file.ReadAt(data_offset_ + entry->begin, entry->end - entry->begin));
  return tensor;
}

absl::StatusOr<std::vector<RawTensor>> SafetensorsFile::ReadAll() const {
  std::vector<RawTensor> tensors;
  for (const SafetensorsEntry& entry : entries_) {
    RESBM_ASSIGN_OR_RETURN(RawTensor tensor, Read(entry.name));
    tensors.push_back(std::move(tensor));
  }
  return tensors;
}

}  // namespace resbm
