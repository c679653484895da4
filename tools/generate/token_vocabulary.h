// TokenVocabulary: turns token ids back into text for resbm-generate: bytes for a byte-level
// model, or the strings of a vocabulary file: a Hugging Face vocab.json ({"token": id}, in
// GPT-2's byte-level alphabet, which is mapped back to bytes) or a plain file with one token
// per line (line i is token i). A value; thread-compatible.
#ifndef RESBM_TOOLS_GENERATE_TOKEN_VOCABULARY_H_
#define RESBM_TOOLS_GENERATE_TOKEN_VOCABULARY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace resbm {

class TokenVocabulary {
 public:
  // Token i is byte i.
  static TokenVocabulary Bytes();
  // InvalidArgument naming the file and the entry for a malformed file.
  static absl::StatusOr<TokenVocabulary> Load(const std::string& path);

  // The text of `ids`; ids without an entry become "<id>".
  std::string Decode(const std::vector<int64_t>& ids) const;
  // A byte vocabulary's ids of `text`; FailedPrecondition for a file vocabulary (that would
  // need its merges: give ids instead).
  absl::StatusOr<std::vector<int64_t>> EncodeBytes(absl::string_view text) const;
  size_t size() const { return tokens_.size(); }

 private:
  bool bytes_ = false;
  std::vector<std::string> tokens_;  // [id] -> bytes; empty entries are unknown.
  std::vector<bool> known_;
};

}  // namespace resbm

#endif  // RESBM_TOOLS_GENERATE_TOKEN_VOCABULARY_H_
