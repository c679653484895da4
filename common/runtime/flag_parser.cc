#include "common/runtime/flag_parser.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace resbm {

FlagParser::FlagParser(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void FlagParser::AddString(const std::string& name, std::string* target, const std::string& help) {
  flags_[name] = Flag{help, *target, false, [target](const std::string& value) {
                        *target = value;
                        return absl::OkStatus();
                      }};
}

void FlagParser::AddDouble(const std::string& name, double* target, const std::string& help) {
  flags_[name] = Flag{help, absl::StrCat(*target), false, [target, name](const std::string& value) {
                        if (!absl::SimpleAtod(value, target) || !std::isfinite(*target)) {
                          return absl::InvalidArgumentError(
                              absl::StrCat("--", name, ": '", value, "'; expected a number"));
                        }
                        return absl::OkStatus();
                      }};
}

void FlagParser::AddInt(const std::string& name, int64_t* target, const std::string& help) {
  flags_[name] = Flag{help, absl::StrCat(*target), false, [target, name](const std::string& value) {
                        if (!absl::SimpleAtoi(value, target)) {
                          return absl::InvalidArgumentError(
                              absl::StrCat("--", name, ": '", value, "'; expected an integer"));
                        }
                        return absl::OkStatus();
                      }};
}

void FlagParser::AddBool(const std::string& name, bool* target, const std::string& help) {
  flags_[name] =
      Flag{help, *target ? "true" : "false", true, [target, name](const std::string& value) {
             if (!absl::SimpleAtob(value, target)) {
               return absl::InvalidArgumentError(
                   absl::StrCat("--", name, ": '", value, "'; expected true or false"));
             }
             return absl::OkStatus();
           }};
}

void FlagParser::AcceptPositional(std::vector<std::string>* target, int max_count,
                                  const std::string& usage) {
  positional_ = target;
  max_positional_ = max_count;
  positional_usage_ = usage;
}

std::optional<int> FlagParser::ParseCommandLine(int argc, char** argv) {
  const absl::Status parsed = Parse(argc, argv);
  if (help_requested_) {
    std::printf("%s", Usage().c_str());
    return 0;
  }
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s: %s\n", program_.c_str(), parsed.ToString().c_str());
    return 2;
  }
  return std::nullopt;
}

absl::Status FlagParser::Parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0 && positional_ != nullptr &&
        static_cast<int>(positional_->size()) < max_positional_) {
      positional_->push_back(arg);
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("argument '", arg, "': expected a flag (--name=value); see --help"));
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = flags_.find(name);
    if (it == flags_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": unknown flag; see ", program_, " --help"));
    }
    if (!has_value) {
      if (it->second.is_bool) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", name, ": missing value"));
      }
    }
    if (auto status = it->second.set(value); !status.ok()) return status;
    set_[name] = true;
  }
  return absl::OkStatus();
}

std::string FlagParser::Usage() const {
  std::string out = absl::StrCat("usage: ", program_, positional_usage_.empty() ? "" : " ",
                                 positional_usage_, " [flags]\n", summary_, "\n\nflags:\n");
  for (const auto& [name, flag] : flags_) {
    absl::StrAppend(&out, "  --", name, flag.is_bool ? "" : " VALUE", "\n      ", flag.help,
                    " (default: ", flag.default_value.empty() ? "\"\"" : flag.default_value, ")\n");
  }
  return out;
}

}  // namespace resbm
