#include "common/model/model_tensor_names.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace resbm {
namespace {

// Block parameters: the local suffix after "layer<i>." and the Llama name after
// "model.layers.<i>.", in Llama's order.
struct BlockTensor {
  const char* local;
  const char* exported;
};

constexpr BlockTensor kBlockTensors[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn.wq.weight", "self_attn.q_proj.weight"},
    {"attn.wk.weight", "self_attn.k_proj.weight"},
    {"attn.wv.weight", "self_attn.v_proj.weight"},
    {"attn.wo.weight", "self_attn.o_proj.weight"},
    {"mlp_norm.weight", "post_attention_layernorm.weight"},
    {"mlp.w1.weight", "mlp.gate_proj.weight"},
    {"mlp.w3.weight", "mlp.up_proj.weight"},
    {"mlp.w2.weight", "mlp.down_proj.weight"},
};

absl::Status Unknown(const StageSpec& spec, absl::string_view local_name) {
  return absl::InvalidArgumentError(absl::StrCat("stage ", spec.index, " parameter '", local_name,
                                                 "': no export name; expected a parameter of ",
                                                 "the embedding, a block, a boundary half, the ",
                                                 "final norm or the head"));
}

bool HasBoundaryHalves(CompressionKind kind) {
  return kind == CompressionKind::kResbm || kind == CompressionKind::kBottleneck;
}

}  // namespace

absl::StatusOr<std::string> ModelTensorNames::ExportName(const StageSpec& spec,
                                                         absl::string_view local_name) {
  if (local_name == "embed.weight" && spec.is_first())
    return std::string("model.embed_tokens.weight");
  if (local_name == "final_norm.weight" && spec.is_last()) return std::string("model.norm.weight");
  if (local_name == "head.weight" && spec.is_last()) return std::string("lm_head.weight");
  if (local_name == "encoder.E.weight" && !spec.is_last()) {
    return absl::StrCat("model.boundaries.", spec.index, ".encoder.weight");
  }
  if (local_name == "decoder.D.weight" && !spec.is_first()) {
    return absl::StrCat("model.boundaries.", spec.index - 1, ".decoder.weight");
  }
  if (!absl::ConsumePrefix(&local_name, "layer")) return Unknown(spec, local_name);
  const size_t dot = local_name.find('.');
  int64_t layer = -1;
  if (dot == absl::string_view::npos || !absl::SimpleAtoi(local_name.substr(0, dot), &layer) ||
      layer < spec.first_layer || layer >= spec.first_layer + spec.num_layers) {
    return Unknown(spec, absl::StrCat("layer", local_name));
  }
  const absl::string_view suffix = local_name.substr(dot + 1);
  for (const BlockTensor& tensor : kBlockTensors) {
    if (suffix == tensor.local) return absl::StrCat("model.layers.", layer, ".", tensor.exported);
  }
  return Unknown(spec, absl::StrCat("layer", local_name));
}

absl::StatusOr<int64_t> ModelTensorNames::OwningStage(const std::vector<StageSpec>& plan,
                                                      absl::string_view name) {
  const int64_t stages = static_cast<int64_t>(plan.size());
  auto unknown = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "': not a tensor of a ", stages, "-stage model"));
  };
  if (stages == 0) return unknown();
  if (name == "model.embed_tokens.weight") return 0;
  if (name == "model.norm.weight" || name == "lm_head.weight") return stages - 1;
  absl::string_view rest = name;
  int64_t index = -1;
  auto take_index = [&](absl::string_view prefix) {
    if (!absl::ConsumePrefix(&rest, prefix)) return false;
    const size_t dot = rest.find('.');
    if (dot == absl::string_view::npos || !absl::SimpleAtoi(rest.substr(0, dot), &index)) {
      return false;
    }
    rest.remove_prefix(dot + 1);
    return true;
  };
  if (take_index("model.boundaries.") && index >= 0 && index + 1 < stages) {
    if (rest == "encoder.weight") return index;
    if (rest == "decoder.weight") return index + 1;
    return unknown();
  }
  rest = name;
  if (take_index("model.layers.")) {
    for (const StageSpec& spec : plan) {
      if (index >= spec.first_layer && index < spec.first_layer + spec.num_layers) {
        for (const BlockTensor& tensor : kBlockTensors) {
          if (rest == tensor.exported) return spec.index;
        }
      }
    }
  }
  return unknown();
}

std::vector<NamedShape> ModelTensorNames::ExportShapes(const ModelOptions& model,
                                                       const CompressionOptions& compression,
                                                       const std::vector<StageSpec>& plan) {
  const int64_t d = model.d_model, f = model.mlp_hidden, v = model.vocab_size;
  const int64_t k = compression.WireWidth(d);
  std::vector<NamedShape> shapes;
  shapes.push_back({"model.embed_tokens.weight", {v, d}});
  for (int64_t layer = 0; layer < model.n_layers; ++layer) {
    const std::string prefix = absl::StrCat("model.layers.", layer, ".");
    shapes.push_back({prefix + "input_layernorm.weight", {d}});
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
      shapes.push_back({absl::StrCat(prefix, "self_attn.", proj, ".weight"), {d, d}});
    }
    shapes.push_back({prefix + "post_attention_layernorm.weight", {d}});
    shapes.push_back({prefix + "mlp.gate_proj.weight", {f, d}});
    shapes.push_back({prefix + "mlp.up_proj.weight", {f, d}});
    shapes.push_back({prefix + "mlp.down_proj.weight", {d, f}});
  }
  if (HasBoundaryHalves(compression.kind)) {
    for (size_t s = 0; s + 1 < plan.size(); ++s) {
      const std::string prefix = absl::StrCat("model.boundaries.", s, ".");
      shapes.push_back({prefix + "encoder.weight", {k, d}});
      shapes.push_back({prefix + "decoder.weight", {d, k}});
    }
  }
  shapes.push_back({"model.norm.weight", {d}});
  shapes.push_back({"lm_head.weight", {v, d}});
  return shapes;
}

}  // namespace resbm
