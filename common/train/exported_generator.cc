#include "common/train/exported_generator.h"

#include "common/config/job_config.h"
#include "common/modelio/model_source.h"
#include "common/status/status_macros.h"
#include "common/train/stage_initializer.h"

namespace resbm {

absl::StatusOr<LoadedGenerator> ExportedGenerator::Load(const std::string& dir,
                                                        const std::string& device) {
  RESBM_ASSIGN_OR_RETURN(ExportedModel model, ExportedModel::Open(dir));
  GeneratorOptions options;
  options.model = ToModelOptions(model.config());
  options.compression = ToCompressionOptions(model.config());
  RESBM_ASSIGN_OR_RETURN(options.plan, PlanJobStages(model.config()));
  options.device = device;
  RESBM_ASSIGN_OR_RETURN(auto generator, Generator::Create(options));
  RESBM_ASSIGN_OR_RETURN(auto source, ModelSource::OpenModel(model.safetensors_path()));
  for (int64_t s = 0; s < generator->num_stages(); ++s) {
    RESBM_RETURN_IF_ERROR(StageInitializer::CopyParameters(*source, generator->spec(s),
                                                           generator->StageParameters(s)));
  }
  return LoadedGenerator{std::move(model), std::move(generator)};
}

}  // namespace resbm
