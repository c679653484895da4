// ExportedGenerator: a Generator built from an export directory: its config.json gives the
// model, the stage split and the boundary (kind, ratio, wire dtype), and model.safetensors
// the weights, copied into every stage by export name. Stateless; thread-safe.
#ifndef RESBM_COMMON_TRAIN_EXPORTED_GENERATOR_H_
#define RESBM_COMMON_TRAIN_EXPORTED_GENERATOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/model/generator.h"
#include "common/modelio/exported_model.h"

namespace resbm {

struct LoadedGenerator {
  ExportedModel model;
  std::unique_ptr<Generator> generator;
};

class ExportedGenerator {
 public:
  // `device`: "cpu", "cuda", "cuda:N".
  static absl::StatusOr<LoadedGenerator> Load(const std::string& dir, const std::string& device);
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRAIN_EXPORTED_GENERATOR_H_
