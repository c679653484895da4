#include "common/data/byte_corpus.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

namespace fs = std::filesystem;

absl::Status FsError(const std::error_code& ec, const std::string& what) {
  return absl::ErrnoToStatus(ec.value(), what);
}

// Appends the bytes of the file at `path` to `tokens`, one token per byte.
absl::Status AppendFileBytes(const std::string& path, std::vector<uint16_t>* tokens) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("byte corpus file ", path, ": cannot open"));
  }
  unsigned char buffer[1 << 16];
  absl::Status status;
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      status =
          absl::ErrnoToStatus(errno, absl::StrCat("byte corpus file ", path, ": read failed after ",
                                                  tokens->size(), " corpus bytes"));
      break;
    }
    if (n == 0) break;
    tokens->insert(tokens->end(), buffer, buffer + n);
  }
  ::close(fd);
  return status;
}

// Lists the corpus files directly inside `dir`, sorted by name.
absl::StatusOr<std::vector<std::string>> ListCorpusFiles(const std::string& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return FsError(ec, absl::StrCat("byte corpus directory ", dir, ": cannot list"));
  std::vector<std::string> names;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const fs::directory_entry& entry = *it;
    const std::string name = entry.path().filename().string();
    if (absl::EndsWith(name, ".dat") || absl::EndsWith(name, ".u8")) continue;
    std::error_code type_ec;
    // symlink_status: a symlink is skipped even when it points at a regular file.
    const fs::file_status st = entry.symlink_status(type_ec);
    if (type_ec) {
      return FsError(type_ec,
                     absl::StrCat("byte corpus file ", entry.path().string(), ": cannot stat"));
    }
    if (!fs::is_regular_file(st)) continue;
    names.push_back(name);
  }
  if (ec) return FsError(ec, absl::StrCat("byte corpus directory ", dir, ": cannot list"));
  std::sort(names.begin(), names.end());
  std::vector<std::string> files;
  files.reserve(names.size());
  for (const std::string& name : names) files.push_back((fs::path(dir) / name).string());
  return files;
}

}  // namespace

absl::StatusOr<std::vector<uint16_t>> ReadByteCorpus(const std::vector<std::string>& paths) {
  if (paths.empty()) {
    return absl::InvalidArgumentError("byte corpus: no paths given, expected at least one");
  }
  std::vector<uint16_t> tokens;
  for (const std::string& path : paths) {
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);  // Follows symlinks given explicitly.
    if (ec || !fs::exists(st)) {
      if (!ec || ec == std::errc::no_such_file_or_directory) {
        return absl::NotFoundError(absl::StrCat("byte corpus path ", path,
                                                ": does not exist, expected a file or directory"));
      }
      return FsError(ec, absl::StrCat("byte corpus path ", path, ": cannot stat"));
    }
    if (fs::is_directory(st)) {
      RESBM_ASSIGN_OR_RETURN(std::vector<std::string> files, ListCorpusFiles(path));
      for (const std::string& file : files) {
        RESBM_RETURN_IF_ERROR(AppendFileBytes(file, &tokens));
      }
    } else if (fs::is_regular_file(st)) {
      RESBM_RETURN_IF_ERROR(AppendFileBytes(path, &tokens));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("byte corpus path ", path, ": neither a regular file nor a directory"));
    }
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("byte corpus: the ", paths.size(),
                                                   " path(s) starting with ", paths.front(),
                                                   " hold 0 bytes, expected at least 1"));
  }
  return tokens;
}

std::string DecodeBytes(const std::vector<uint16_t>& tokens) {
  std::string text;
  text.reserve(tokens.size());
  for (uint16_t token : tokens) text.push_back(token <= 255 ? static_cast<char>(token) : '?');
  return text;
}

}  // namespace resbm
