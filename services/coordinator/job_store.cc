#include "services/coordinator/job_store.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace resbm {
namespace {

// One prepared statement, finalized when it goes out of scope.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool prepared() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Bind(int i, const std::string& text) {
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int i, const std::string& bytes) {
    sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, int64_t value) { sqlite3_bind_int64(stmt_, i, value); }
  void Bind(int i, double value) { sqlite3_bind_double(stmt_, i, value); }
  void BindNull(int i) { sqlite3_bind_null(stmt_, i); }
  int Step() { return sqlite3_step(stmt_); }
  std::string Blob(int column) {
    const void* data = sqlite3_column_blob(stmt_, column);
    return std::string(static_cast<const char*>(data), sqlite3_column_bytes(stmt_, column));
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

constexpr char kSchema[] = R"sql(
  CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    state INTEGER NOT NULL,
    job BLOB NOT NULL  -- resbm.v1.Job, serialized
  );
  CREATE TABLE IF NOT EXISTS steps (
    job_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    train_loss REAL NOT NULL,
    val_loss REAL,
    grad_norm REAL NOT NULL,
    seconds REAL NOT NULL,
    clip_factor REAL NOT NULL DEFAULT 1.0,
    PRIMARY KEY (job_id, step)
  );
)sql";

}  // namespace

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string why = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("job store ", path, ": cannot open: ", why));
  }
  std::unique_ptr<JobStore> store(new JobStore(db));
  absl::MutexLock lock(&store->mu_);
  sqlite3_busy_timeout(db, 5000);
  // WAL with synchronous=NORMAL: a committed transaction survives the process being killed
  // (the OS has it); only a power loss can take the last commits.
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", kSchema}) {
    if (absl::Status status = store->Exec(sql); !status.ok()) {
      return absl::Status(status.code(), absl::StrCat("job store ", path, ": ", status.message()));
    }
  }
  if (absl::Status status = store->AddStepColumnsMissingFromOlderStores(); !status.ok()) {
    return absl::Status(status.code(), absl::StrCat("job store ", path, ": ", status.message()));
  }
  return store;
}

JobStore::JobStore(sqlite3* db) : db_(db) {}

JobStore::~JobStore() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status JobStore::AddStepColumnsMissingFromOlderStores() {
  Statement columns(db_, "SELECT 1 FROM pragma_table_info('steps') WHERE name = 'clip_factor'");
  if (!columns.prepared()) return Error("steps columns");
  const int rc = columns.Step();
  if (rc == SQLITE_ROW) return absl::OkStatus();
  if (rc != SQLITE_DONE) return Error("steps columns");
  // Steps recorded before the clip factor was: 1.0, as if unclipped.
  return Exec("ALTER TABLE steps ADD COLUMN clip_factor REAL NOT NULL DEFAULT 1.0");
}

absl::Status JobStore::Exec(const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    absl::Status status = absl::InternalError(absl::StrCat("sqlite: ", message ? message : "?"));
    sqlite3_free(message);
    return status;
  }
  return absl::OkStatus();
}

absl::Status JobStore::Error(const std::string& what) {
  return absl::InternalError(absl::StrCat("job store: ", what, ": ", sqlite3_errmsg(db_)));
}

absl::StatusOr<v1::Job> JobStore::Create(v1::Job job,
                                         const std::function<void(v1::Job*)>& complete) {
  absl::MutexLock lock(&mu_);
  int64_t seq = 1;
  {
    Statement next(db_, "SELECT IFNULL(MAX(seq), 0) + 1 FROM jobs");
    if (!next.prepared() || next.Step() != SQLITE_ROW) return Error("next job id");
    seq = sqlite3_column_int64(next.get(), 0);
  }
  job.set_job_id(absl::StrCat("job-", seq));
  if (complete) complete(&job);
  Statement insert(db_, "INSERT INTO jobs (seq, job_id, state, job) VALUES (?, ?, ?, ?)");
  if (!insert.prepared()) return Error("insert job");
  insert.Bind(1, seq);
  insert.Bind(2, job.job_id());
  insert.Bind(3, static_cast<int64_t>(job.state()));
  insert.BindBlob(4, job.SerializeAsString());
  if (insert.Step() != SQLITE_DONE) return Error(absl::StrCat("insert ", job.job_id()));
  return job;
}

absl::Status JobStore::Put(const v1::Job& job) {
  absl::MutexLock lock(&mu_);
  Statement update(db_, "UPDATE jobs SET state = ?, job = ? WHERE job_id = ?");
  if (!update.prepared()) return Error("update job");
  update.Bind(1, static_cast<int64_t>(job.state()));
  update.BindBlob(2, job.SerializeAsString());
  update.Bind(3, job.job_id());
  if (update.Step() != SQLITE_DONE) return Error(absl::StrCat("update ", job.job_id()));
  if (sqlite3_changes(db_) == 0) {
    return absl::NotFoundError(absl::StrCat("job_id: '", job.job_id(), "' is not stored"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> JobStore::Get(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Statement select(db_, "SELECT job FROM jobs WHERE job_id = ?");
  if (!select.prepared()) return Error("select job");
  select.Bind(1, job_id);
  const int rc = select.Step();
  if (rc == SQLITE_DONE) {
    return absl::NotFoundError(absl::StrCat("job_id: '", job_id, "'; no such job"));
  }
  v1::Job job;
  if (rc != SQLITE_ROW) return Error(absl::StrCat("select ", job_id));
  if (!job.ParseFromString(select.Blob(0))) {
    return absl::DataLossError(absl::StrCat("job store: ", job_id, ": unreadable record"));
  }
  return job;
}

absl::StatusOr<std::vector<v1::Job>> JobStore::List() {
  absl::MutexLock lock(&mu_);
  Statement select(db_, "SELECT job FROM jobs ORDER BY seq");
  if (!select.prepared()) return Error("list jobs");
  std::vector<v1::Job> jobs;
  int rc;
  while ((rc = select.Step()) == SQLITE_ROW) {
    v1::Job job;
    if (!job.ParseFromString(select.Blob(0))) {
      return absl::DataLossError("job store: an unreadable job record");
    }
    jobs.push_back(std::move(job));
  }
  if (rc != SQLITE_DONE) return Error("list jobs");
  return jobs;
}

absl::Status JobStore::PutStep(const std::string& job_id, const StepRecord& record) {
  absl::MutexLock lock(&mu_);
  Statement insert(db_,
                   "INSERT OR REPLACE INTO steps (job_id, step, tokens, train_loss, val_loss, "
                   "grad_norm, seconds, clip_factor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  if (!insert.prepared()) return Error("insert step");
  insert.Bind(1, job_id);
  insert.Bind(2, record.step);
  insert.Bind(3, record.tokens);
  insert.Bind(4, record.stats.loss);
  if (record.val_loss.has_value()) {
    insert.Bind(5, *record.val_loss);
  } else {
    insert.BindNull(5);
  }
  insert.Bind(6, record.stats.grad_norm);
  insert.Bind(7, record.seconds);
  insert.Bind(8, record.stats.clip_factor);
  if (insert.Step() != SQLITE_DONE)
    return Error(absl::StrCat("step ", record.step, " of ", job_id));
  return absl::OkStatus();
}

absl::Status JobStore::TruncateSteps(const std::string& job_id, int64_t step) {
  absl::MutexLock lock(&mu_);
  Statement erase(db_, "DELETE FROM steps WHERE job_id = ? AND step > ?");
  if (!erase.prepared()) return Error("delete steps");
  erase.Bind(1, job_id);
  erase.Bind(2, step);
  if (erase.Step() != SQLITE_DONE) return Error(absl::StrCat("steps of ", job_id));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StepRecord>> JobStore::Steps(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Statement select(
      db_,
      "SELECT step, tokens, train_loss, val_loss, grad_norm, seconds, clip_factor FROM steps "
      "WHERE job_id = ? ORDER BY step");
  if (!select.prepared()) return Error("select steps");
  select.Bind(1, job_id);
  std::vector<StepRecord> records;
  int rc;
  while ((rc = select.Step()) == SQLITE_ROW) {
    StepRecord r;
    r.step = sqlite3_column_int64(select.get(), 0);
    r.tokens = sqlite3_column_int64(select.get(), 1);
    r.stats.loss = sqlite3_column_double(select.get(), 2);
    if (sqlite3_column_type(select.get(), 3) != SQLITE_NULL) {
      r.val_loss = sqlite3_column_double(select.get(), 3);
    }
    r.stats.grad_norm = sqlite3_column_double(select.get(), 4);
    r.seconds = sqlite3_column_double(select.get(), 5);
    r.stats.clip_factor = sqlite3_column_double(select.get(), 6);
    records.push_back(r);
  }
  if (rc != SQLITE_DONE) return Error(absl::StrCat("steps of ", job_id));
  return records;
}

}  // namespace resbm
