#include "common/config/job_config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/status/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace resbm {
namespace {

// ---------------------------------------------------------------------------------------------
// Defaults (each states the value of its proto comment).

constexpr char kDefaultName[] = "resbm-job";
constexpr char kDefaultByteCorpusPath[] = "/usr/share/games/fortunes";

constexpr uint32_t kMaxVocab = 65536;  // Tokens are uint16.
constexpr uint32_t kMaxDModel = 65536;
constexpr uint32_t kMaxSeqLen = 65536;
constexpr uint32_t kMaxNsSteps = 20;
constexpr uint32_t kMaxSteps = 1000000000;
constexpr uint32_t kMaxReplicas = 64;
constexpr uint32_t kByteVocab = 256;

void ApplyModelDefaults(v1::ModelConfig* m) {
  if (m->vocab_size() == 0) m->set_vocab_size(256);
  if (m->d_model() == 0) m->set_d_model(256);
  if (m->n_layers() == 0) m->set_n_layers(4);
  if (m->n_heads() == 0) m->set_n_heads(4);
  if (m->mlp_hidden() == 0) {
    // Saturates instead of wrapping for absurd widths, which validation then rejects.
    const uint64_t hidden = 3 * static_cast<uint64_t>(m->d_model());
    m->set_mlp_hidden(
        static_cast<uint32_t>(std::min<uint64_t>(hidden, std::numeric_limits<uint32_t>::max())));
  }
  if (m->seq_len() == 0) m->set_seq_len(128);
  if (m->rope_theta() == 0.0f) m->set_rope_theta(10000.0f);
  if (m->norm_eps() == 0.0f) m->set_norm_eps(1e-5f);
  if (m->init_std() == 0.0f) m->set_init_std(0.02f);
  if (m->compute_dtype() == v1::COMPUTE_DTYPE_UNSPECIFIED) {
    m->set_compute_dtype(v1::COMPUTE_DTYPE_FP32);
  }
}

// Measured at the default job: see the README's "Compression beyond the paper".
constexpr float kDefaultHalvesLrScale = 0.03f;

void ApplyCompressionDefaults(uint32_t d_model, v1::CompressionConfig* c) {
  if (c->kind() == v1::COMPRESSION_KIND_UNSPECIFIED) c->set_kind(v1::COMPRESSION_KIND_RESBM);
  if (c->ratio() == 0) c->set_ratio(c->kind() == v1::COMPRESSION_KIND_NONE ? 1 : 128);
  if (c->wire_dtype() == v1::WIRE_DTYPE_UNSPECIFIED) c->set_wire_dtype(v1::WIRE_DTYPE_BF16);
  if (!c->has_init_std()) c->set_init_std(0.0f);
  if (c->token_channel() == v1::TOKEN_CHANNEL_UNSPECIFIED) {
    // The measured best (docs/study/boundary); `none` sends the whole residual, and stays the
    // plain model it is compared with.
    c->set_token_channel(c->kind() == v1::COMPRESSION_KIND_NONE ? v1::TOKEN_CHANNEL_NONE
                                                                : v1::TOKEN_CHANNEL_LEARNED);
  }
  if (c->token_channel() == v1::TOKEN_CHANNEL_FACTORIZED && c->token_channel_rank() == 0) {
    c->set_token_channel_rank(std::min<uint32_t>(32, std::max<uint32_t>(d_model, 1)));
  }
  if (!c->has_encoder_norm()) c->set_encoder_norm(false);
}

// E and D's own learning rate: the measured best for Muon (README, "Compression beyond the
// paper"); 1 where there are no halves or no Muon to scale.
void ApplyHalvesLrDefault(v1::JobConfig* config) {
  v1::CompressionConfig* c = config->mutable_compression();
  if (c->has_halves_lr_scale()) return;
  const bool halves =
      c->kind() == v1::COMPRESSION_KIND_RESBM || c->kind() == v1::COMPRESSION_KIND_BOTTLENECK;
  const bool muon = config->optimizer().kind() == v1::OPTIMIZER_KIND_MUON;
  c->set_halves_lr_scale(halves && muon ? kDefaultHalvesLrScale : 1.0f);
}

void ApplyOptimizerDefaults(v1::OptimizerConfig* o) {
  if (o->kind() == v1::OPTIMIZER_KIND_UNSPECIFIED) o->set_kind(v1::OPTIMIZER_KIND_MUON);

  v1::MuonConfig* muon = o->mutable_muon();
  if (muon->lr() == 0.0f) muon->set_lr(0.02f);
  if (muon->momentum() == 0.0f) muon->set_momentum(0.95f);
  if (!muon->has_nesterov()) muon->set_nesterov(true);
  if (muon->ns_steps() == 0) muon->set_ns_steps(5);
  if (!muon->has_weight_decay()) muon->set_weight_decay(0.0f);

  v1::AdamWConfig* adamw = o->mutable_adamw();
  if (adamw->lr() == 0.0f) adamw->set_lr(0.003f);
  if (adamw->beta1() == 0.0f) adamw->set_beta1(0.9f);
  if (adamw->beta2() == 0.0f) adamw->set_beta2(0.95f);
  if (adamw->eps() == 0.0f) adamw->set_eps(1e-8f);
  if (!adamw->has_weight_decay()) adamw->set_weight_decay(0.0f);

  v1::LrScheduleConfig* schedule = o->mutable_lr_schedule();
  if (!schedule->has_warmup_steps()) schedule->set_warmup_steps(0);
  if (schedule->decay() == v1::LR_DECAY_UNSPECIFIED) schedule->set_decay(v1::LR_DECAY_COSINE);
  if (!schedule->has_min_lr_ratio()) schedule->set_min_lr_ratio(0.1f);

  if (!o->has_grad_clip()) o->set_grad_clip(1.0f);

  v1::OuterOptimizerConfig* outer = o->mutable_outer();
  if (!outer->has_lr()) outer->set_lr(0.7f);
  if (!outer->has_momentum()) outer->set_momentum(0.9f);
  if (outer->dtype() == v1::WIRE_DTYPE_UNSPECIFIED) outer->set_dtype(v1::WIRE_DTYPE_BF16);
}

void ApplyTrainingDefaults(v1::TrainingConfig* t) {
  if (t->steps() == 0) t->set_steps(300);
  if (t->batch_size() == 0) t->set_batch_size(16);
  if (t->microbatches() == 0) t->set_microbatches(4);
  if (!t->has_eval_every()) t->set_eval_every(50);
  if (t->eval_batches() == 0) t->set_eval_batches(8);
  if (!t->has_seed()) t->set_seed(1337);
  if (t->schedule() == v1::PIPELINE_SCHEDULE_UNSPECIFIED) {
    t->set_schedule(v1::PIPELINE_SCHEDULE_GPIPE);
  }
  if (!t->has_checkpoint_every()) t->set_checkpoint_every(50);
  if (t->on_non_finite() == v1::NON_FINITE_POLICY_UNSPECIFIED) {
    t->set_on_non_finite(v1::NON_FINITE_POLICY_FAIL);
  }
  if (t->max_recoveries_without_progress() == 0) t->set_max_recoveries_without_progress(5);
  if (t->keep_checkpoints() == 0) t->set_keep_checkpoints(2);
}

void ApplyDataDefaults(v1::DataConfig* d) {
  if (d->source_case() == v1::DataConfig::SOURCE_NOT_SET) d->mutable_byte_corpus();
  if (d->has_byte_corpus()) {
    v1::ByteCorpusSource* corpus = d->mutable_byte_corpus();
    if (corpus->paths().empty()) corpus->add_paths(kDefaultByteCorpusPath);
    if (corpus->val_fraction() == 0.0f) corpus->set_val_fraction(0.1f);
  }
}

// ---------------------------------------------------------------------------------------------
// Validation helpers. Each returns OK or "<path>: <value>...; expected ...".

absl::Status Invalid(absl::string_view path, absl::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", detail));
}

absl::Status CheckRange(absl::string_view path, uint64_t value, uint64_t lo, uint64_t hi) {
  if (value >= lo && value <= hi) return absl::OkStatus();
  return Invalid(path, absl::StrCat(value, "; expected ", lo, "..", hi));
}

absl::Status CheckAtLeast(absl::string_view path, uint64_t value, uint64_t lo) {
  if (value >= lo) return absl::OkStatus();
  return Invalid(path, absl::StrCat(value, "; expected >= ", lo));
}

// The comparisons are written so that NaN fails every check.
absl::Status CheckPositiveFinite(absl::string_view path, float value) {
  if (std::isfinite(value) && value > 0.0f) return absl::OkStatus();
  return Invalid(path, absl::StrCat(value, "; expected a finite value > 0"));
}

absl::Status CheckNonNegativeFinite(absl::string_view path, float value) {
  if (std::isfinite(value) && value >= 0.0f) return absl::OkStatus();
  return Invalid(path, absl::StrCat(value, "; expected a finite value >= 0"));
}

// [0, 1): momentum and Adam betas.
absl::Status CheckUnitHalfOpen(absl::string_view path, float value) {
  if (value >= 0.0f && value < 1.0f) return absl::OkStatus();
  return Invalid(path, absl::StrCat(value, "; expected a value in [0, 1)"));
}

// Rejects UNSPECIFIED (0) and numbers the enum does not define: proto3 JSON and text format
// accept any integer for an open enum.
absl::Status CheckEnum(absl::string_view path, int value,
                       const google::protobuf::EnumDescriptor* descriptor) {
  const google::protobuf::EnumValueDescriptor* found = descriptor->FindValueByNumber(value);
  if (found != nullptr && value != 0) return absl::OkStatus();
  std::vector<std::string> allowed;
  for (int i = 0; i < descriptor->value_count(); ++i) {
    if (descriptor->value(i)->number() != 0) allowed.push_back(descriptor->value(i)->name());
  }
  const std::string shown = found != nullptr ? found->name() : absl::StrCat(value);
  return Invalid(path, absl::StrCat(shown, "; expected one of ", absl::StrJoin(allowed, ", ")));
}

// "such as 2, 4, 8, ... 128": the divisors of n in [2, n / 2], abbreviated past four.
std::string DivisorHint(uint32_t n) {
  std::vector<uint32_t> divisors;
  for (uint32_t r = 2; r <= n / 2; ++r) {
    if (n % r == 0) divisors.push_back(r);
  }
  if (divisors.empty()) return absl::StrCat("expected a divisor of ", n, " (1 or ", n, ")");
  std::string list;
  if (divisors.size() <= 4) {
    list = absl::StrJoin(divisors, ", ");
  } else {
    list =
        absl::StrCat(divisors[0], ", ", divisors[1], ", ", divisors[2], ", ... ", divisors.back());
  }
  return absl::StrCat("expected a divisor of ", n, " such as ", list);
}

std::string Quoted(absl::string_view s) { return absl::StrCat("\"", absl::CHexEscape(s), "\""); }

// The offset of the first byte that is not part of well-formed UTF-8 (no overlong forms, no
// surrogates, at most U+10FFFF), or -1 when `text` is valid. Protobuf refuses to serialize a
// string field that is not, so such a config could not be stored or sent.
int64_t FirstInvalidUtf8(absl::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    size_t len;
    uint32_t min;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, min = 0x10000;
    } else {
      return static_cast<int64_t>(i);
    }
    if (i + len > n) return static_cast<int64_t>(i);
    uint32_t code = c & (0x7f >> len);
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return static_cast<int64_t>(i);
      code = (code << 6) | (s[i + k] & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      return static_cast<int64_t>(i);
    }
    i += len;
  }
  return -1;
}

absl::Status CheckUtf8(absl::string_view path, absl::string_view text) {
  const int64_t bad = FirstInvalidUtf8(text);
  if (bad < 0) return absl::OkStatus();
  return Invalid(path, absl::StrCat("not valid UTF-8 (byte 0x",
                                    absl::Hex(static_cast<unsigned char>(text[bad]), absl::kZeroPad2),
                                    " at offset ", bad, "); expected UTF-8 text"));
}

absl::Status ValidateName(const std::string& name) {
  RESBM_RETURN_IF_ERROR(CheckUtf8("name", name));
  if (name.size() <= static_cast<size_t>(kMaxJobNameLength)) return absl::OkStatus();
  return Invalid("name",
                 absl::StrCat(Quoted(name.substr(0, 24)), "... (", name.size(),
                              " characters); expected at most ", kMaxJobNameLength, " characters"));
}

absl::Status ValidateModel(const v1::ModelConfig& m) {
  RESBM_RETURN_IF_ERROR(
      CheckEnum("model.compute_dtype", m.compute_dtype(), v1::ComputeDtype_descriptor()));
  RESBM_RETURN_IF_ERROR(CheckRange("model.vocab_size", m.vocab_size(), 2, kMaxVocab));
  RESBM_RETURN_IF_ERROR(CheckRange("model.d_model", m.d_model(), 8, kMaxDModel));
  RESBM_RETURN_IF_ERROR(CheckAtLeast("model.n_layers", m.n_layers(), 1));
  RESBM_RETURN_IF_ERROR(CheckRange("model.n_heads", m.n_heads(), 1, m.d_model()));
  if (m.d_model() % m.n_heads() != 0) {
    return Invalid("model.n_heads", absl::StrCat(m.n_heads(), " does not divide model.d_model ",
                                                 m.d_model(), "; ", DivisorHint(m.d_model())));
  }
  const uint32_t head_dim = m.d_model() / m.n_heads();
  if (head_dim % 2 != 0) {
    return Invalid("model.n_heads",
                   absl::StrCat(m.n_heads(), " gives an odd head dim ", head_dim,
                                " (model.d_model ", m.d_model(), " / ", m.n_heads(),
                                "); expected an even head dim (rotary embeddings rotate pairs)"));
  }
  RESBM_RETURN_IF_ERROR(CheckAtLeast("model.mlp_hidden", m.mlp_hidden(), 1));
  RESBM_RETURN_IF_ERROR(CheckRange("model.seq_len", m.seq_len(), 2, kMaxSeqLen));
  RESBM_RETURN_IF_ERROR(CheckPositiveFinite("model.rope_theta", m.rope_theta()));
  if (!(m.norm_eps() > 0.0f && m.norm_eps() < 1.0f)) {
    return Invalid("model.norm_eps",
                   absl::StrCat(m.norm_eps(), "; expected a value in (0, 1) such as 1e-5"));
  }
  RESBM_RETURN_IF_ERROR(CheckPositiveFinite("model.init_std", m.init_std()));
  return absl::OkStatus();
}

absl::Status ValidateStages(const v1::StagesConfig& s, uint32_t n_layers) {
  RESBM_RETURN_IF_ERROR(CheckRange("stages.replicas", s.replicas(), 1, kMaxReplicas));
  if (s.num_stages() < 1 || s.num_stages() > n_layers) {
    const std::string problem =
        s.num_stages() > n_layers ? absl::StrCat(" exceeds model.n_layers ", n_layers) : "";
    return Invalid("stages.num_stages",
                   absl::StrCat(s.num_stages(), problem, "; expected 1..", n_layers));
  }
  if (s.layers_per_stage().empty()) return absl::OkStatus();
  if (static_cast<uint32_t>(s.layers_per_stage_size()) != s.num_stages()) {
    return Invalid(
        "stages.layers_per_stage",
        absl::StrCat("[", absl::StrJoin(s.layers_per_stage(), ", "), "] has ",
                     s.layers_per_stage_size(), " entries for stages.num_stages ", s.num_stages(),
                     "; expected ", s.num_stages(), " entries or none (an even split)"));
  }
  uint64_t sum = 0;
  for (int i = 0; i < s.layers_per_stage_size(); ++i) {
    RESBM_RETURN_IF_ERROR(
        CheckAtLeast(absl::StrCat("stages.layers_per_stage[", i, "]"), s.layers_per_stage(i), 1));
    sum += s.layers_per_stage(i);
  }
  if (sum != n_layers) {
    return Invalid(
        "stages.layers_per_stage",
        absl::StrCat("[", absl::StrJoin(s.layers_per_stage(), ", "), "] sums to ", sum,
                     " but model.n_layers is ", n_layers, "; expected a sum of ", n_layers));
  }
  return absl::OkStatus();
}

absl::Status ValidateCompression(const v1::CompressionConfig& c, uint32_t d_model) {
  RESBM_RETURN_IF_ERROR(CheckEnum("compression.kind", c.kind(), v1::CompressionKind_descriptor()));
  RESBM_RETURN_IF_ERROR(
      CheckEnum("compression.wire_dtype", c.wire_dtype(), v1::WireDtype_descriptor()));
  if (c.ratio() < 1) {
    return Invalid("compression.ratio", absl::StrCat(c.ratio(), "; ", DivisorHint(d_model)));
  }
  if (c.kind() == v1::COMPRESSION_KIND_NONE && c.ratio() != 1) {
    return Invalid("compression.ratio",
                   absl::StrCat(c.ratio(), " with compression.kind COMPRESSION_KIND_NONE; ",
                                "expected 1 or unset (NONE sends h unchanged)"));
  }
  if (d_model % c.ratio() != 0) {
    return Invalid("compression.ratio", absl::StrCat(c.ratio(), " does not divide model.d_model ",
                                                     d_model, "; ", DivisorHint(d_model)));
  }
  RESBM_RETURN_IF_ERROR(CheckNonNegativeFinite("compression.init_std", c.init_std()));
  RESBM_RETURN_IF_ERROR(
      CheckEnum("compression.token_channel", c.token_channel(), v1::TokenChannel_descriptor()));
  if (c.kind() == v1::COMPRESSION_KIND_NONE && c.token_channel() != v1::TOKEN_CHANNEL_NONE) {
    return Invalid("compression.token_channel",
                   absl::StrCat(v1::TokenChannel_Name(c.token_channel()),
                                " with compression.kind COMPRESSION_KIND_NONE; expected ",
                                "TOKEN_CHANNEL_NONE (NONE sends the whole residual, and is the ",
                                "plain model the others are compared with)"));
  }
  if (c.token_channel() == v1::TOKEN_CHANNEL_FACTORIZED) {
    if (c.token_channel_rank() < 1 || c.token_channel_rank() > d_model) {
      return Invalid(
          "compression.token_channel_rank",
          absl::StrCat(c.token_channel_rank(), "; expected 1..model.d_model (", d_model, ")"));
    }
  } else if (c.token_channel_rank() != 0) {
    return Invalid("compression.token_channel_rank",
                   absl::StrCat(c.token_channel_rank(), " with compression.token_channel ",
                                v1::TokenChannel_Name(c.token_channel()),
                                "; expected unset (only TOKEN_CHANNEL_FACTORIZED has a rank)"));
  }
  const bool has_halves =
      c.kind() == v1::COMPRESSION_KIND_RESBM || c.kind() == v1::COMPRESSION_KIND_BOTTLENECK;
  if (!has_halves && (c.encoder_norm() || c.halves_hidden() != 0)) {
    return Invalid(c.encoder_norm() ? "compression.encoder_norm" : "compression.halves_hidden",
                   absl::StrCat("set with compression.kind ", v1::CompressionKind_Name(c.kind()),
                                "; expected unset (only RESBM and BOTTLENECK have E and D)"));
  }
  RESBM_RETURN_IF_ERROR(CheckPositiveFinite("compression.halves_lr_scale", c.halves_lr_scale()));
  if (c.halves_hidden() > 16 * d_model) {
    return Invalid("compression.halves_hidden",
                   absl::StrCat(c.halves_hidden(), "; expected 0 (linear) or 1..16 x d_model (",
                                16 * d_model, ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateOuter(const v1::OuterOptimizerConfig& outer) {
  RESBM_RETURN_IF_ERROR(CheckRange("optimizer.outer.steps", outer.steps(), 0, kMaxSteps));
  RESBM_RETURN_IF_ERROR(CheckPositiveFinite("optimizer.outer.lr", outer.lr()));
  if (!(outer.momentum() >= 0.0f && outer.momentum() < 1.0f)) {
    return Invalid("optimizer.outer.momentum",
                   absl::StrCat(outer.momentum(), "; expected a value in [0, 1)"));
  }
  RESBM_RETURN_IF_ERROR(
      CheckEnum("optimizer.outer.dtype", outer.dtype(), v1::WireDtype_descriptor()));
  if (outer.dtype() == v1::WIRE_DTYPE_FP16) {
    return Invalid("optimizer.outer.dtype",
                   "WIRE_DTYPE_FP16; expected WIRE_DTYPE_FP32, WIRE_DTYPE_BF16 or WIRE_DTYPE_INT8");
  }
  return absl::OkStatus();
}

// The outer optimizer's period must end the run and every checkpoint on a synchronised state.
absl::Status ValidateOuterPeriod(const v1::JobConfig& config) {
  const uint32_t h = config.optimizer().outer().steps();
  if (h == 0) return absl::OkStatus();
  const v1::TrainingConfig& t = config.training();
  if (t.steps() % h != 0) {
    return Invalid("training.steps", absl::StrCat(t.steps(), " with optimizer.outer.steps ", h,
                                                  "; expected a multiple of ", h));
  }
  if (t.checkpoint_every() % h != 0) {
    return Invalid("training.checkpoint_every",
                   absl::StrCat(t.checkpoint_every(), " with optimizer.outer.steps ", h,
                                "; expected 0 or a multiple of ", h));
  }
  return absl::OkStatus();
}

absl::Status ValidateOptimizer(const v1::OptimizerConfig& o, uint32_t training_steps) {
  RESBM_RETURN_IF_ERROR(CheckEnum("optimizer.kind", o.kind(), v1::OptimizerKind_descriptor()));

  const v1::MuonConfig& muon = o.muon();
  RESBM_RETURN_IF_ERROR(CheckPositiveFinite("optimizer.muon.lr", muon.lr()));
  RESBM_RETURN_IF_ERROR(CheckUnitHalfOpen("optimizer.muon.momentum", muon.momentum()));
  RESBM_RETURN_IF_ERROR(CheckRange("optimizer.muon.ns_steps", muon.ns_steps(), 1, kMaxNsSteps));
  RESBM_RETURN_IF_ERROR(CheckNonNegativeFinite("optimizer.muon.weight_decay", muon.weight_decay()));

  const v1::AdamWConfig& adamw = o.adamw();
  RESBM_RETURN_IF_ERROR(CheckPositiveFinite("optimizer.adamw.lr", adamw.lr()));
  RESBM_RETURN_IF_ERROR(CheckUnitHalfOpen("optimizer.adamw.beta1", adamw.beta1()));
  RESBM_RETURN_IF_ERROR(CheckUnitHalfOpen("optimizer.adamw.beta2", adamw.beta2()));
  RESBM_RETURN_IF_ERROR(CheckPositiveFinite("optimizer.adamw.eps", adamw.eps()));
  RESBM_RETURN_IF_ERROR(
      CheckNonNegativeFinite("optimizer.adamw.weight_decay", adamw.weight_decay()));

  const v1::LrScheduleConfig& schedule = o.lr_schedule();
  RESBM_RETURN_IF_ERROR(
      CheckEnum("optimizer.lr_schedule.decay", schedule.decay(), v1::LrDecay_descriptor()));
  if (!(schedule.min_lr_ratio() >= 0.0f && schedule.min_lr_ratio() <= 1.0f)) {
    return Invalid("optimizer.lr_schedule.min_lr_ratio",
                   absl::StrCat(schedule.min_lr_ratio(), "; expected a value in [0, 1]"));
  }
  if (schedule.warmup_steps() > training_steps) {
    return Invalid("optimizer.lr_schedule.warmup_steps",
                   absl::StrCat(schedule.warmup_steps(), " exceeds training.steps ", training_steps,
                                "; expected 0..", training_steps));
  }
  RESBM_RETURN_IF_ERROR(CheckNonNegativeFinite("optimizer.grad_clip", o.grad_clip()));
  return ValidateOuter(o.outer());
}

absl::Status ValidateTraining(const v1::TrainingConfig& t) {
  RESBM_RETURN_IF_ERROR(CheckRange("training.steps", t.steps(), 1, kMaxSteps));
  RESBM_RETURN_IF_ERROR(CheckAtLeast("training.batch_size", t.batch_size(), 1));
  RESBM_RETURN_IF_ERROR(CheckRange("training.microbatches", t.microbatches(), 1, t.batch_size()));
  if (t.batch_size() % t.microbatches() != 0) {
    return Invalid("training.microbatches",
                   absl::StrCat(t.microbatches(), " does not divide training.batch_size ",
                                t.batch_size(), "; ", DivisorHint(t.batch_size())));
  }
  RESBM_RETURN_IF_ERROR(CheckAtLeast("training.eval_batches", t.eval_batches(), 1));
  RESBM_RETURN_IF_ERROR(
      CheckEnum("training.schedule", t.schedule(), v1::PipelineSchedule_descriptor()));
  RESBM_RETURN_IF_ERROR(
      CheckEnum("training.on_non_finite", t.on_non_finite(), v1::NonFinitePolicy_descriptor()));
  RESBM_RETURN_IF_ERROR(CheckRange("training.max_recoveries_without_progress",
                                   t.max_recoveries_without_progress(), 1, 1000));
  RESBM_RETURN_IF_ERROR(CheckRange("training.keep_checkpoints", t.keep_checkpoints(), 2, 1000));
  return absl::OkStatus();
}

absl::Status CheckPaths(absl::string_view path,
                        const google::protobuf::RepeatedPtrField<std::string>& paths,
                        absl::string_view what) {
  if (paths.empty()) {
    return Invalid(path, absl::StrCat("empty; expected at least one ", what));
  }
  for (int i = 0; i < paths.size(); ++i) {
    if (paths.Get(i).empty()) {
      return Invalid(absl::StrCat(path, "[", i, "]"),
                     absl::StrCat("\"\"; expected a non-empty ", what));
    }
    RESBM_RETURN_IF_ERROR(CheckUtf8(absl::StrCat(path, "[", i, "]"), paths.Get(i)));
  }
  return absl::OkStatus();
}

absl::Status ValidateData(const v1::DataConfig& d, uint32_t vocab_size) {
  switch (d.source_case()) {
    case v1::DataConfig::kByteCorpus: {
      const v1::ByteCorpusSource& corpus = d.byte_corpus();
      RESBM_RETURN_IF_ERROR(
          CheckPaths("data.byte_corpus.paths", corpus.paths(), "file or directory path"));
      if (!(corpus.val_fraction() > 0.0f && corpus.val_fraction() <= 0.5f)) {
        return Invalid("data.byte_corpus.val_fraction",
                       absl::StrCat(corpus.val_fraction(), "; expected a value in (0, 0.5]"));
      }
      // Cross-field: every byte 0..255 is a token, so a smaller embedding would be indexed out
      // of range at the first batch.
      if (vocab_size < kByteVocab) {
        return Invalid(
            "model.vocab_size",
            absl::StrCat(vocab_size, " is too small for data.byte_corpus (one token per ",
                         "byte, ids 0..255); expected >= ", kByteVocab));
      }
      return absl::OkStatus();
    }
    case v1::DataConfig::kTokenShards:
      RESBM_RETURN_IF_ERROR(CheckPaths("data.token_shards.train_paths",
                                       d.token_shards().train_paths(), "shard file path"));
      return CheckPaths("data.token_shards.val_paths", d.token_shards().val_paths(),
                        "shard file path");
    case v1::DataConfig::SOURCE_NOT_SET:
      break;
  }
  return Invalid("data", "no source set; expected byte_corpus or token_shards");
}

// ---------------------------------------------------------------------------------------------
// Parsing.

// Collects text-format parse errors as "line L column C: message" (1-based).
class TextFormatErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(absl::StrCat("line ", line + 1, " column ", column + 1, ": ",
                                   absl::StripSuffix(message, ".")));
  }
  std::string Joined() const { return absl::StrJoin(errors_, "; "); }

 private:
  std::vector<std::string> errors_;
};

absl::Status ValidateInit(const v1::InitConfig& init) {
  std::string field;
  const std::string* value = nullptr;
  switch (init.source_case()) {
    case v1::InitConfig::kFromModel:
      field = "init.from_model";
      value = &init.from_model();
      break;
    case v1::InitConfig::kFromCheckpoint:
      field = "init.from_checkpoint";
      value = &init.from_checkpoint();
      break;
    case v1::InitConfig::kFromJob:
      field = "init.from_job";
      value = &init.from_job();
      break;
    case v1::InitConfig::SOURCE_NOT_SET:
      break;
  }
  if (value != nullptr) {
    if (value->empty()) {
      return Invalid(field, init.has_from_job() ? "\"\"; expected a job id such as \"job-1\""
                                                : "\"\"; expected a path");
    }
    RESBM_RETURN_IF_ERROR(CheckUtf8(field, *value));
  }
  if (init.carry_optimizer_state() && !init.has_from_checkpoint() && !init.has_from_job()) {
    return Invalid("init.carry_optimizer_state",
                   absl::StrCat("true without a checkpoint to carry it from (",
                                init.has_from_model() ? "an exported model has no optimizer state"
                                                      : "no init source",
                                "); expected init.from_checkpoint or init.from_job"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::JobConfig> DefaultAndValidate(v1::JobConfig config) {
  ApplyJobConfigDefaults(&config);
  RESBM_RETURN_IF_ERROR(ValidateJobConfig(config));
  return config;
}

absl::Status PrefixStatus(absl::string_view prefix, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, ": ", status.message()));
}

// The float's shortest decimal form ("0.02") read as a double, so that 0.02f becomes exactly
// the 0.02 a C++ default in model_options.h holds rather than 0.0199999995529651. Keeps the
// config path and the struct defaults bit-identical.
double FloatToDouble(float value) {
  if (!std::isfinite(value)) return static_cast<double>(value);
  for (int precision = 6; precision <= 9; ++precision) {
    const std::string text = absl::StrFormat("%.*g", precision, value);
    float round_trip = 0.0f;
    double widened = 0.0;
    if (absl::SimpleAtof(text, &round_trip) && round_trip == value &&
        absl::SimpleAtod(text, &widened)) {
      return widened;
    }
  }
  return static_cast<double>(value);
}

}  // namespace

absl::StatusOr<v1::JobConfig> ParseJobConfigJson(absl::string_view json) {
  v1::JobConfig config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const google::protobuf::util::Status status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &config, options);
  if (!status.ok()) {
    const auto message = status.message();
    return absl::InvalidArgumentError(
        absl::StrCat("job config JSON: ",
                     absl::StripSuffix(absl::string_view(message.data(), message.size()), "."),
                     "; expected proto3 JSON of resbm.v1.JobConfig (field names in snake_case ",
                     "or lowerCamelCase, enum values by name)"));
  }
  return DefaultAndValidate(std::move(config));
}

absl::StatusOr<v1::JobConfig> ParseJobConfigTextproto(absl::string_view text) {
  v1::JobConfig config;
  TextFormatErrors errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &config)) {
    return absl::InvalidArgumentError(
        absl::StrCat("job config textproto: ", errors.Joined(),
                     "; expected protobuf text format of resbm.v1.JobConfig"));
  }
  return DefaultAndValidate(std::move(config));
}

absl::StatusOr<v1::JobConfig> LoadJobConfigFile(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open job config file (", std::strerror(errno), ")"));
  }
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file; expected a JSON or textproto job config"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open job config file (", std::strerror(errno), ")"));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat(path, ": read failed"));
  }
  const bool textproto = absl::EndsWith(path, ".textproto") || absl::EndsWith(path, ".pbtxt");
  absl::StatusOr<v1::JobConfig> config =
      textproto ? ParseJobConfigTextproto(contents.str()) : ParseJobConfigJson(contents.str());
  if (!config.ok()) return PrefixStatus(path, config.status());
  return config;
}

v1::JobConfig DefaultJobConfig() {
  v1::JobConfig config;
  ApplyJobConfigDefaults(&config);
  return config;
}

void ApplyJobConfigDefaults(v1::JobConfig* config) {
  if (config->name().empty()) config->set_name(kDefaultName);
  ApplyModelDefaults(config->mutable_model());
  auto* stages = config->mutable_stages();
  if (stages->num_stages() == 0) {
    // An explicit split says how many stages there are; otherwise the default pipeline is
    // four stages (ResBM at every boundary), fewer for models with fewer blocks.
    stages->set_num_stages(stages->layers_per_stage_size() > 0
                               ? static_cast<uint32_t>(stages->layers_per_stage_size())
                               : std::min<uint32_t>(4, config->model().n_layers()));
  }
  if (stages->replicas() == 0) stages->set_replicas(1);
  ApplyCompressionDefaults(config->model().d_model(), config->mutable_compression());
  ApplyOptimizerDefaults(config->mutable_optimizer());
  ApplyHalvesLrDefault(config);
  ApplyTrainingDefaults(config->mutable_training());
  ApplyDataDefaults(config->mutable_data());
  config->mutable_init();  // No source: parameters drawn from training.seed.
}

absl::Status ValidateJobConfig(const v1::JobConfig& config) {
  RESBM_RETURN_IF_ERROR(ValidateName(config.name()));
  RESBM_RETURN_IF_ERROR(ValidateModel(config.model()));
  RESBM_RETURN_IF_ERROR(ValidateStages(config.stages(), config.model().n_layers()));
  RESBM_RETURN_IF_ERROR(ValidateCompression(config.compression(), config.model().d_model()));
  RESBM_RETURN_IF_ERROR(ValidateOptimizer(config.optimizer(), config.training().steps()));
  if (config.compression().halves_lr_scale() != 1.0f &&
      config.optimizer().kind() != v1::OPTIMIZER_KIND_MUON) {
    return Invalid("compression.halves_lr_scale",
                   absl::StrCat(config.compression().halves_lr_scale(), " with optimizer.kind ",
                                v1::OptimizerKind_Name(config.optimizer().kind()),
                                "; expected 1 or unset (it scales Muon's learning rate)"));
  }
  RESBM_RETURN_IF_ERROR(ValidateTraining(config.training()));
  if (config.stages().replicas() > config.training().microbatches()) {
    return Invalid("stages.replicas",
                   absl::StrCat(config.stages().replicas(), " pipelines for training.microbatches ",
                                config.training().microbatches(),
                                "; expected at most one pipeline per microbatch"));
  }
  RESBM_RETURN_IF_ERROR(ValidateOuterPeriod(config));
  RESBM_RETURN_IF_ERROR(ValidateData(config.data(), config.model().vocab_size()));
  RESBM_RETURN_IF_ERROR(ValidateInit(config.init()));
  return absl::OkStatus();
}

ScheduleKind ToScheduleKind(const v1::JobConfig& config) {
  return config.training().schedule() == v1::PIPELINE_SCHEDULE_1F1B ? ScheduleKind::k1F1B
                                                                    : ScheduleKind::kGpipe;
}

absl::StatusOr<std::vector<StageSpec>> PlanJobStages(const v1::JobConfig& config) {
  const std::vector<int64_t> sizes(config.stages().layers_per_stage().begin(),
                                   config.stages().layers_per_stage().end());
  return PlanStages(config.model().n_layers(), config.stages().num_stages(), sizes);
}

ModelOptions ToModelOptions(const v1::JobConfig& config) {
  v1::JobConfig effective = config;
  ApplyJobConfigDefaults(&effective);
  const v1::ModelConfig& m = effective.model();
  ModelOptions options;
  options.vocab_size = m.vocab_size();
  options.d_model = m.d_model();
  options.n_layers = m.n_layers();
  options.n_heads = m.n_heads();
  options.mlp_hidden = m.mlp_hidden();
  options.seq_len = m.seq_len();
  options.rope_theta = FloatToDouble(m.rope_theta());
  options.norm_eps = FloatToDouble(m.norm_eps());
  options.init_std = FloatToDouble(m.init_std());
  // Values ValidateJobConfig rejects keep the struct default (fp32).
  options.compute_dtype =
      m.compute_dtype() == v1::COMPUTE_DTYPE_BF16 ? ComputeDtype::kBf16 : ComputeDtype::kFp32;
  return options;
}

void SetCompression(v1::CompressionKind kind, uint32_t ratio, v1::JobConfig* config) {
  v1::CompressionConfig* c = config->mutable_compression();
  const v1::WireDtype wire = c->wire_dtype();
  const std::optional<float> init_std =
      c->has_init_std() ? std::optional<float>(c->init_std()) : std::nullopt;
  c->Clear();
  c->set_kind(kind);
  c->set_ratio(kind == v1::COMPRESSION_KIND_NONE ? 1 : ratio);
  c->set_wire_dtype(wire);
  if (init_std.has_value()) c->set_init_std(*init_std);
  ApplyCompressionDefaults(config->model().d_model(), c);
  ApplyHalvesLrDefault(config);
}

CompressionOptions ToCompressionOptions(const v1::JobConfig& config) {
  v1::JobConfig effective = config;
  ApplyJobConfigDefaults(&effective);
  const v1::CompressionConfig& c = effective.compression();
  CompressionOptions options;
  switch (c.kind()) {
    case v1::COMPRESSION_KIND_NONE:
      options.kind = CompressionKind::kNone;
      break;
    case v1::COMPRESSION_KIND_BOTTLENECK:
      options.kind = CompressionKind::kBottleneck;
      break;
    case v1::COMPRESSION_KIND_TRUNCATE:
      options.kind = CompressionKind::kTruncate;
      break;
    default:  // RESBM; values ValidateJobConfig rejects keep the struct default.
      options.kind = CompressionKind::kResbm;
      break;
  }
  options.ratio = c.ratio();
  // Values ValidateJobConfig rejects keep the struct default (bf16).
  options.wire_dtype = WireDtypeFromProto(c.wire_dtype()).value_or(WireDtype::kBf16);
  options.init_std = FloatToDouble(c.init_std());
  switch (c.token_channel()) {
    case v1::TOKEN_CHANNEL_LEARNED:
      options.token_channel = TokenChannelKind::kLearned;
      break;
    case v1::TOKEN_CHANNEL_FIXED:
      options.token_channel = TokenChannelKind::kFixed;
      break;
    case v1::TOKEN_CHANNEL_FACTORIZED:
      options.token_channel = TokenChannelKind::kFactorized;
      options.token_channel_rank = c.token_channel_rank();
      break;
    default:
      options.token_channel = TokenChannelKind::kNone;
      break;
  }
  options.encoder_norm = c.encoder_norm();
  options.halves_hidden = c.halves_hidden();
  return options;
}

absl::StatusOr<v1::JobConfig> LoadJobConfigWithOverrides(const std::string& path,
                                                         const JobOverrides& overrides) {
  v1::JobConfig config = DefaultJobConfig();
  if (!path.empty()) {
    RESBM_ASSIGN_OR_RETURN(config, LoadJobConfigFile(path));
  }
  auto positive = [](const char* flag, int64_t value) -> absl::Status {
    if (value >= 1 && value <= std::numeric_limits<uint32_t>::max()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": ", value, "; expected a positive integer"));
  };
  if (overrides.steps) {
    RESBM_RETURN_IF_ERROR(positive("steps", *overrides.steps));
    config.mutable_training()->set_steps(static_cast<uint32_t>(*overrides.steps));
  }
  if (overrides.stages) {
    RESBM_RETURN_IF_ERROR(positive("stages", *overrides.stages));
    config.mutable_stages()->set_num_stages(static_cast<uint32_t>(*overrides.stages));
    config.mutable_stages()->clear_layers_per_stage();
  }
  if (overrides.replicas) {
    RESBM_RETURN_IF_ERROR(positive("replicas", *overrides.replicas));
    config.mutable_stages()->set_replicas(static_cast<uint32_t>(*overrides.replicas));
  }
  if (overrides.seed) {
    if (*overrides.seed < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--seed: ", *overrides.seed, "; expected a non-negative integer"));
    }
    config.mutable_training()->set_seed(static_cast<uint64_t>(*overrides.seed));
  }
  RESBM_RETURN_IF_ERROR(ValidateJobConfig(config));
  return config;
}

absl::StatusOr<WireDtype> WireDtypeFromProto(int dtype) {
  switch (dtype) {
    case v1::WIRE_DTYPE_FP32:
      return WireDtype::kFp32;
    case v1::WIRE_DTYPE_BF16:
      return WireDtype::kBf16;
    case v1::WIRE_DTYPE_FP16:
      return WireDtype::kFp16;
    case v1::WIRE_DTYPE_INT8:
      return WireDtype::kInt8;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("dtype: ", dtype, "; expected one of FP32, BF16, FP16, INT8"));
  }
}

v1::WireDtype WireDtypeToProto(WireDtype dtype) {
  switch (dtype) {
    case WireDtype::kFp32:
      return v1::WIRE_DTYPE_FP32;
    case WireDtype::kBf16:
      return v1::WIRE_DTYPE_BF16;
    case WireDtype::kFp16:
      return v1::WIRE_DTYPE_FP16;
    case WireDtype::kInt8:
      return v1::WIRE_DTYPE_INT8;
  }
  return v1::WIRE_DTYPE_UNSPECIFIED;
}

OptimizerOptions ToOptimizerOptions(const v1::JobConfig& config) {
  v1::JobConfig effective = config;
  ApplyJobConfigDefaults(&effective);
  const v1::OptimizerConfig& o = effective.optimizer();
  OptimizerOptions options;
  options.use_muon = o.kind() == v1::OPTIMIZER_KIND_MUON;

  options.muon.lr = FloatToDouble(o.muon().lr());
  options.muon.momentum = FloatToDouble(o.muon().momentum());
  options.muon.nesterov = o.muon().nesterov();
  options.muon.ns_steps = static_cast<int>(o.muon().ns_steps());
  options.muon.weight_decay = FloatToDouble(o.muon().weight_decay());

  options.adamw.lr = FloatToDouble(o.adamw().lr());
  options.adamw.beta1 = FloatToDouble(o.adamw().beta1());
  options.adamw.beta2 = FloatToDouble(o.adamw().beta2());
  options.adamw.eps = FloatToDouble(o.adamw().eps());
  options.adamw.weight_decay = FloatToDouble(o.adamw().weight_decay());
  options.halves_lr_scale = FloatToDouble(effective.compression().halves_lr_scale());

  const v1::LrScheduleConfig& schedule = o.lr_schedule();
  options.schedule.warmup_steps = schedule.warmup_steps();
  switch (schedule.decay()) {
    case v1::LR_DECAY_LINEAR:
      options.schedule.decay = LrDecay::kLinear;
      break;
    case v1::LR_DECAY_CONSTANT:
      options.schedule.decay = LrDecay::kConstant;
      break;
    default:  // COSINE; invalid values keep the struct default.
      options.schedule.decay = LrDecay::kCosine;
      break;
  }
  options.schedule.min_lr_ratio = FloatToDouble(schedule.min_lr_ratio());
  options.schedule.total_steps = effective.training().steps();

  options.grad_clip = FloatToDouble(o.grad_clip());
  options.outer.steps = o.outer().steps();
  options.outer.lr = FloatToDouble(o.outer().lr());
  options.outer.momentum = FloatToDouble(o.outer().momentum());
  options.outer.dtype = WireDtypeFromProto(o.outer().dtype()).value_or(WireDtype::kBf16);
  return options;
}

std::string JobConfigToJson(const v1::JobConfig& config) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const google::protobuf::util::Status status =
      google::protobuf::util::MessageToJsonString(config, &json, options);
  if (!status.ok()) {
    // Printing a JobConfig has no failure mode today (no Any, no maps); keep the output
    // parseable JSON if a future field adds one.
    const auto message = status.message();
    return absl::StrCat("{\"json_print_error\": \"",
                        absl::CEscape(absl::string_view(message.data(), message.size())), "\"}\n");
  }
  return json;
}

}  // namespace resbm
