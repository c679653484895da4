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

// A boundary half's local suffix after "encoder." / "decoder.": its map's weights under
// `map` ("E." / "D."), or the encoder's norm gain.
bool IsHalfSuffix(absl::string_view rest, absl::string_view map) {
  if (rest == "norm.weight") return map == "E.";
  if (!absl::ConsumePrefix(&rest, map)) return false;
  return rest == "weight" || rest == "fc1.weight" || rest == "fc2.weight";
}

// "E.weight" -> "weight", "E.fc1.weight" -> "fc1.weight", "norm.weight" unchanged.
absl::string_view HalfExportSuffix(absl::string_view rest) {
  if (rest.size() > 2 && rest[1] == '.' && (rest[0] == 'E' || rest[0] == 'D')) {
    rest.remove_prefix(2);
  }
  return rest;
}

bool IsMapWeight(absl::string_view rest) {
  return rest == "weight" || rest == "fc1.weight" || rest == "fc2.weight";
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
  absl::string_view rest = local_name;
  if (!spec.is_last() && absl::ConsumePrefix(&rest, "encoder.") && IsHalfSuffix(rest, "E.")) {
    return absl::StrCat("model.boundaries.", spec.index, ".encoder.", HalfExportSuffix(rest));
  }
  rest = local_name;
  if (!spec.is_first() && absl::ConsumePrefix(&rest, "decoder.") && IsHalfSuffix(rest, "D.")) {
    return absl::StrCat("model.boundaries.", spec.index - 1, ".decoder.", HalfExportSuffix(rest));
  }
  rest = local_name;
  if (!spec.is_first() && absl::ConsumePrefix(&rest, "token_channel.") &&
      (rest == "table.weight" || rest == "proj.weight")) {
    return absl::StrCat("model.token_channels.", spec.index, ".", rest);
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
    if (absl::ConsumePrefix(&rest, "encoder.") && (rest == "norm.weight" || IsMapWeight(rest))) {
      return index;
    }
    if (absl::ConsumePrefix(&rest, "decoder.") && IsMapWeight(rest)) return index + 1;
    return unknown();
  }
  rest = name;
  if (take_index("model.token_channels.") && index >= 1 && index < stages) {
    if (rest == "table.weight" || rest == "proj.weight" || rest == "fixed_table") return index;
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
    const int64_t m = compression.halves_hidden;
    for (size_t s = 0; s + 1 < plan.size(); ++s) {
      const std::string prefix = absl::StrCat("model.boundaries.", s, ".");
      if (compression.encoder_norm) shapes.push_back({prefix + "encoder.norm.weight", {d}});
      if (m == 0) {
        shapes.push_back({prefix + "encoder.weight", {k, d}});
        shapes.push_back({prefix + "decoder.weight", {d, k}});
      } else {
        shapes.push_back({prefix + "encoder.fc1.weight", {m, d}});
        shapes.push_back({prefix + "encoder.fc2.weight", {k, m}});
        shapes.push_back({prefix + "decoder.fc1.weight", {m, k}});
        shapes.push_back({prefix + "decoder.fc2.weight", {d, m}});
      }
    }
  }
  for (size_t s = 1; s < plan.size(); ++s) {
    const std::string prefix = absl::StrCat("model.token_channels.", s, ".");
    switch (compression.token_channel) {
      case TokenChannelKind::kNone:
        break;
      case TokenChannelKind::kLearned:
        shapes.push_back({prefix + "table.weight", {v, d}});
        break;
      case TokenChannelKind::kFixed:
        shapes.push_back({FixedTableName(static_cast<int64_t>(s)), {v, d}});
        break;
      case TokenChannelKind::kFactorized:
        shapes.push_back({prefix + "table.weight", {v, compression.token_channel_rank}});
        shapes.push_back({prefix + "proj.weight", {d, compression.token_channel_rank}});
        break;
    }
  }
  shapes.push_back({"model.norm.weight", {d}});
  shapes.push_back({"lm_head.weight", {v, d}});
  return shapes;
}

std::string ModelTensorNames::FixedTableName(int64_t stage) {
  return absl::StrCat("model.token_channels.", stage, ".fixed_table");
}

}  // namespace resbm
