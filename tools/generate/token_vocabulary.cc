#include "tools/generate/token_vocabulary.h"

#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/file_io.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

constexpr int64_t kMaxTokens = 1 << 22;

// GPT-2's byte-level BPE writes byte b as a printable code point; this inverts it.
std::map<uint32_t, char> Gpt2CodePointToByte() {
  std::map<uint32_t, char> map;
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    map[printable ? b : next++] = static_cast<char>(b);
  }
  return map;
}

// The code points of UTF-8 `text`; false for malformed UTF-8.
bool CodePoints(absl::string_view text, std::vector<uint32_t>* out) {
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > text.size()) return false;
    uint32_t cp = len == 1 ? c : c & (0x7f >> len);
    for (int k = 1; k < len; ++k) {
      const auto cont = static_cast<unsigned char>(text[i + k]);
      if ((cont >> 6) != 2) return false;
      cp = (cp << 6) | (cont & 0x3f);
    }
    out->push_back(cp);
    i += len;
  }
  return true;
}

}  // namespace

TokenVocabulary TokenVocabulary::Bytes() {
  TokenVocabulary vocab;
  vocab.bytes_ = true;
  for (int b = 0; b < 256; ++b) vocab.tokens_.push_back(std::string(1, static_cast<char>(b)));
  vocab.known_.assign(256, true);
  return vocab;
}

absl::StatusOr<TokenVocabulary> TokenVocabulary::Load(const std::string& path) {
  RESBM_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path, 256 << 20));
  TokenVocabulary vocab;
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("--vocab ", path, ": ", what));
  };
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '{') {
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      vocab.tokens_.emplace_back(line);
      vocab.known_.push_back(true);
    }
    return vocab;
  }
  const auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return bad("not a JSON object");
  const auto to_byte = Gpt2CodePointToByte();
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() >= kMaxTokens) {
      return bad(absl::StrCat("token '", it.key(), "': expected an id below ", kMaxTokens));
    }
    const size_t id = it->get<uint64_t>();
    std::vector<uint32_t> points;
    if (!CodePoints(it.key(), &points)) return bad(absl::StrCat("token ", id, ": not UTF-8"));
    std::string bytes;
    for (uint32_t cp : points) {
      auto byte = to_byte.find(cp);
      if (byte == to_byte.end()) {
        return bad(
            absl::StrCat("token ", id, ": code point ", cp, " is not in GPT-2's byte alphabet"));
      }
      bytes.push_back(byte->second);
    }
    if (id >= vocab.tokens_.size()) {
      vocab.tokens_.resize(id + 1);
      vocab.known_.resize(id + 1, false);
    }
    vocab.tokens_[id] = std::move(bytes);
    vocab.known_[id] = true;
  }
  return vocab;
}

std::string TokenVocabulary::Decode(const std::vector<int64_t>& ids) const {
  std::string text;
  for (int64_t id : ids) {
    if (id >= 0 && static_cast<size_t>(id) < tokens_.size() && known_[id]) {
      text += tokens_[id];
    } else {
      absl::StrAppend(&text, "<", id, ">");
    }
  }
  return text;
}

absl::StatusOr<std::vector<int64_t>> TokenVocabulary::EncodeBytes(absl::string_view text) const {
  if (!bytes_) {
    return absl::FailedPreconditionError(
        "--prompt: a token-shard model needs its tokenizer to encode text; give --prompt-ids");
  }
  std::vector<int64_t> ids;
  for (char c : text) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

}  // namespace resbm
