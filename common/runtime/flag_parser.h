// FlagParser: the command-line plumbing of the binaries (--config, ports, paths). Flags are
// declared with their target variables, then parsed; every bad flag becomes a Status naming
// it. Configuration proper lives in the proto config, not here. Not thread-safe.
#ifndef RESBM_COMMON_RUNTIME_FLAG_PARSER_H_
#define RESBM_COMMON_RUNTIME_FLAG_PARSER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace resbm {

class FlagParser {
 public:
  FlagParser(std::string program, std::string summary);

  // Targets are not owned and must outlive Parse(); they keep their value when not given.
  void AddString(const std::string& name, std::string* target, const std::string& help);
  void AddInt(const std::string& name, int64_t* target, const std::string& help);
  // Finite values only.
  void AddDouble(const std::string& name, double* target, const std::string& help);
  void AddBool(const std::string& name, bool* target, const std::string& help);

  // Up to `max_count` arguments that are not flags go to `target` (not owned), in order;
  // `usage` names them in Usage() ("JOB_ID").
  void AcceptPositional(std::vector<std::string>* target, int max_count, const std::string& usage);

  // Accepts --name=value and --name value (bools: --name, --name=true|false). Returns
  // InvalidArgument for an unknown flag, a missing or malformed value, or a positional
  // argument; sets help_requested() for --help.
  absl::Status Parse(int argc, char** argv);

  // Parse() as a main wants it: for --help prints Usage() and gives 0; for a bad command line
  // prints "PROGRAM: ERROR" to stderr and gives 2; otherwise nullopt (go on).
  std::optional<int> ParseCommandLine(int argc, char** argv);

  bool help_requested() const { return help_requested_; }
  // Which flags the command line set (so an override applies only when given).
  bool WasSet(const std::string& name) const { return set_.count(name) != 0; }
  std::string Usage() const;

 private:
  struct Flag {
    std::string help;
    std::string default_value;
    bool is_bool = false;
    std::function<absl::Status(const std::string&)> set;
  };

  std::string program_;
  std::string summary_;
  std::map<std::string, Flag> flags_;
  std::map<std::string, bool> set_;
  bool help_requested_ = false;
  std::vector<std::string>* positional_ = nullptr;
  int max_positional_ = 0;
  std::string positional_usage_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_RUNTIME_FLAG_PARSER_H_
