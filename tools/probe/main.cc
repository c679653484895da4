// resbm-probe: what the C++ model computes on one fixed batch, for checking against an
// independent implementation (tests/reference/): loads an exported model into the training
// pipeline (the same init path a fine-tune takes), draws a seeded batch of token ids (from
// the job's held-out data, or uniformly random ids with --random), and writes one
// safetensors file with the batch, the logits, the loss and the gradient of
// every exported tensor, computed as a training step would (microbatches, 1/m loss scale,
// the boundaries and their wire rounding), nothing applied.
#include <torch/torch.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/data/batch_sampler.h"
#include "common/model/model_tensor_names.h"
#include "common/model/tensor_bytes.h"
#include "common/modelio/exported_model.h"
#include "common/modelio/safetensors_file.h"
#include "common/runtime/flag_parser.h"
#include "common/status/status_macros.h"
#include "common/train/job_dataset.h"
#include "common/train/local_backend.h"

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "resbm-probe: %s\n", status.ToString().c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

struct ProbeOptions {
  std::string model_dir;
  std::string out;
  int64_t batch = 4;
  int64_t microbatches = 2;
  int64_t seed = 5;
  bool random = false;
};

// A batch of `rows` windows: from the job's validation data, or uniformly random ids.
absl::Status DrawBatch(const resbm::v1::JobConfig& config, const ProbeOptions& options,
                       at::Tensor* inputs, at::Tensor* targets) {
  const int64_t vocab = config.model().vocab_size(), seq = config.model().seq_len();
  if (options.random) {
    auto generator = at::detail::createCPUGenerator(static_cast<uint64_t>(options.seed));
    auto tokens = torch::randint(vocab, {options.batch, seq + 1}, generator, torch::kInt64);
    *inputs = tokens.slice(1, 0, seq).contiguous();  // (B, T)
    *targets = tokens.slice(1, 1).contiguous();      // (B, T)
    return absl::OkStatus();
  }
  RESBM_ASSIGN_OR_RETURN(resbm::TokenDataset dataset, resbm::LoadJobDataset(config));
  resbm::BatchSampler sampler(&dataset.val(), seq, static_cast<uint64_t>(options.seed));
  std::vector<int64_t> x, y;
  RESBM_RETURN_IF_ERROR(sampler.Sample(0, 0, options.batch, &x, &y));
  *inputs = torch::tensor(x, torch::kInt64).view({options.batch, seq});   // (B, T)
  *targets = torch::tensor(y, torch::kInt64).view({options.batch, seq});  // (B, T)
  return absl::OkStatus();
}

absl::Status AddTensor(const std::string& name, const at::Tensor& tensor,
                       std::vector<resbm::RawTensor>* out) {
  RESBM_ASSIGN_OR_RETURN(resbm::RawTensor raw, resbm::TensorBytes::ToRaw(name, tensor));
  out->push_back(std::move(raw));
  return absl::OkStatus();
}

absl::Status Probe(const ProbeOptions& options) {
  RESBM_ASSIGN_OR_RETURN(resbm::ExportedModel model, resbm::ExportedModel::Open(options.model_dir));
  resbm::v1::JobConfig config = model.config();
  config.mutable_init()->Clear();
  config.mutable_init()->set_from_model(options.model_dir);
  RESBM_ASSIGN_OR_RETURN(auto backend, resbm::LocalBackend::Create(config, "cpu"));
  resbm::LocalPipeline& pipeline = backend->pipeline();
  at::Tensor inputs, targets;  // (B, T)
  RESBM_RETURN_IF_ERROR(DrawBatch(config, options, &inputs, &targets));
  RESBM_ASSIGN_OR_RETURN(at::Tensor logits, pipeline.Logits(inputs));  // (B, T, V)
  RESBM_ASSIGN_OR_RETURN(double loss,
                         pipeline.ComputeGradients(inputs, targets, options.microbatches));
  std::vector<resbm::RawTensor> out;
  RESBM_RETURN_IF_ERROR(AddTensor("input_ids", inputs, &out));
  RESBM_RETURN_IF_ERROR(AddTensor("targets", targets, &out));
  RESBM_RETURN_IF_ERROR(AddTensor("logits", logits, &out));
  RESBM_RETURN_IF_ERROR(AddTensor("loss", torch::tensor(loss, torch::kFloat64), &out));
  for (int64_t s = 0; s < pipeline.num_stages(); ++s) {
    const resbm::StageSpec& spec = pipeline.stage(s).spec();
    for (const auto& [local, grad] : pipeline.stage(s).Gradients()) {
      RESBM_ASSIGN_OR_RETURN(std::string name, resbm::ModelTensorNames::ExportName(spec, local));
      RESBM_RETURN_IF_ERROR(AddTensor("grad." + name, grad, &out));
    }
  }
  return resbm::SafetensorsFile::Write(
      options.out, out,
      {{"microbatches", absl::StrCat(options.microbatches)},
       {"wire_dtype", resbm::WireDtypeName(resbm::ToCompressionOptions(config).wire_dtype)}});
}

}  // namespace

int main(int argc, char** argv) {
  ProbeOptions options;
  resbm::FlagParser flags("resbm-probe",
                          "Writes the logits, loss and gradients the C++ model computes on a "
                          "seeded batch, for an independent implementation to check.");
  flags.AddString("model", &options.model_dir, "export directory (resbmctl export)");
  flags.AddString("out", &options.out, "the probe file to write (.safetensors)");
  flags.AddInt("batch", &options.batch, "sequences in the batch");
  flags.AddInt("microbatches", &options.microbatches, "microbatches the batch is split into");
  flags.AddInt("seed", &options.seed, "seed of the batch's token ids");
  flags.AddBool("random", &options.random,
                "uniformly random token ids instead of windows of the job's held-out data");
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  if (options.model_dir.empty() || options.out.empty()) {
    return Fail(absl::InvalidArgumentError("--model and --out: required"));
  }
  if (options.batch < 1 || options.microbatches < 1 || options.batch % options.microbatches) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--batch ", options.batch, " --microbatches ", options.microbatches,
                     ": expected microbatches dividing the batch")));
  }
  torch::set_num_threads(1);
  if (absl::Status status = Probe(options); !status.ok()) return Fail(status);
  std::printf("resbm-probe: %s\n", options.out.c_str());
  return 0;
}
