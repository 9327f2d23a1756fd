// The Arrow headers are heavy (tens of seconds per translation unit): they are included here
// and nowhere else.
#include "data/input_parquet.h"

#include "core/error.h"

#if RRT_HAVE_PARQUET
#include <arrow/api.h>
#include <arrow/io/file.h>
#include <arrow/util/config.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/writer.h>
#include <parquet/exception.h>
#endif

namespace rrt {

#if RRT_HAVE_PARQUET

namespace {

// Rows per record batch: bounds memory (1024 documents) whatever the row groups hold.
constexpr int64_t kBatchRows = 1024;

template <typename T>
T value_or_throw(arrow::Result<T> result, const std::string& where, const char* what) {
  RRT_CHECK(result.ok(), where, what, ": ", result.status().ToString());
  return std::move(result).ValueUnsafe();
}

void check(const arrow::Status& status, const std::string& where, const char* what) {
  RRT_CHECK(status.ok(), where, what, ": ", status.ToString());
}

}  // namespace

bool parquet_supported() { return true; }
std::string parquet_library() { return std::string("Apache Arrow ") + ARROW_VERSION_STRING; }

struct ParquetTextReader::Impl {
  std::string path;
  std::unique_ptr<parquet::arrow::FileReader> file;
  std::unique_ptr<arrow::RecordBatchReader> batches;
  std::shared_ptr<arrow::Array> array;  // the current batch's column
  int64_t index = 0, rows = 0;
};

ParquetTextReader::ParquetTextReader(const std::string& path, const std::string& column)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.path = path;
  try {
    parquet::arrow::FileReaderBuilder builder;
    check(builder.OpenFile(path), path, "cannot open the Parquet file (truncated or corrupt?)");
    parquet::ArrowReaderProperties properties;
    properties.set_batch_size(kBatchRows);
    properties.set_use_threads(false);  // rrt's own threads do the parallel work
    builder.properties(properties);
    m.file = value_or_throw(builder.Build(), path, "cannot read the Parquet file");
    const parquet::FileMetaData& meta = *m.file->parquet_reader()->metadata();
    m.rows = meta.num_rows();
    std::shared_ptr<arrow::Schema> schema;
    check(m.file->GetSchema(&schema), path, "cannot read the Parquet schema");
    const int field = schema->GetFieldIndex(column);
    if (field < 0) {
      std::string names;
      for (const auto& f : schema->fields())
        names += (names.empty() ? "" : ", ") + f->name() + " (" + f->type()->ToString() + ")";
      RRT_FAIL(path, "has no column \"", column, "\"; its columns are: ", names,
               "; choose the text column with --text-field");
    }
    const auto type = schema->field(field)->type()->id();
    RRT_CHECK(type == arrow::Type::STRING || type == arrow::Type::LARGE_STRING, path, "column \"",
              column, "\" is of type ", schema->field(field)->type()->ToString(),
              ", not string; choose the text column with --text-field");
    const int leaf = meta.schema()->ColumnIndex(column);
    RRT_CHECK(leaf >= 0, path, "column \"", column, "\" is not a top-level leaf column");
    std::vector<int> groups(static_cast<size_t>(m.file->num_row_groups()));
    for (size_t g = 0; g < groups.size(); ++g) groups[g] = static_cast<int>(g);
    m.batches = value_or_throw(m.file->GetRecordBatchReader(groups, {leaf}), path,
                               "cannot read the Parquet row groups");
  } catch (const parquet::ParquetException& e) {
    RRT_FAIL(path, "cannot read the Parquet file (truncated or corrupt?): ", e.what());
  }
}

ParquetTextReader::~ParquetTextReader() = default;

int64_t ParquetTextReader::rows() const { return impl_->rows; }

bool ParquetTextReader::next(std::string& text, bool& null) {
  Impl& m = *impl_;
  try {
    while (!m.array || m.index == m.array->length()) {
      std::shared_ptr<arrow::RecordBatch> batch;
      check(m.batches->ReadNext(&batch), m.path, "cannot read a Parquet record batch (corrupt?)");
      if (!batch) return false;
      m.array = batch->column(0);
      m.index = 0;
    }
  } catch (const parquet::ParquetException& e) {
    RRT_FAIL(m.path, "cannot read a Parquet record batch (corrupt?): ", e.what());
  }
  const int64_t i = m.index++;
  null = m.array->IsNull(i);
  if (null) {
    text.clear();
  } else if (m.array->type_id() == arrow::Type::STRING) {
    const std::string_view v = static_cast<const arrow::StringArray&>(*m.array).GetView(i);
    text.assign(v.data(), v.size());
  } else {
    const std::string_view v = static_cast<const arrow::LargeStringArray&>(*m.array).GetView(i);
    text.assign(v.data(), v.size());
  }
  return true;
}

void write_parquet_texts(const std::string& path, const std::string& column,
                         const std::vector<std::optional<std::string>>& values,
                         int64_t rows_per_group) {
  arrow::StringBuilder builder;
  for (const auto& value : values)
    check(value ? builder.Append(*value) : builder.AppendNull(), path, "cannot build the column");
  std::shared_ptr<arrow::Array> array;
  check(builder.Finish(&array), path, "cannot build the column");
  const auto table =
      arrow::Table::Make(arrow::schema({arrow::field(column, arrow::utf8())}), {array});
  const auto out =
      value_or_throw(arrow::io::FileOutputStream::Open(path), path, "cannot create the file");
  check(parquet::arrow::WriteTable(*table, arrow::default_memory_pool(), out, rows_per_group), path,
        "cannot write the Parquet file");
  check(out->Close(), path, "cannot close the Parquet file");
}

#else  // !RRT_HAVE_PARQUET

namespace {
[[noreturn]] void no_parquet(const std::string& path) {
  RRT_FAIL(path,
           "is a Parquet file, but this rrt was built without Parquet support; run "
           "tools/fetch_arrow.sh (tools/setup.sh does) and configure again "
           "(-DRRT_ARROW_DIR=<the folder it prints>), or convert the file to .jsonl.zst");
}
}  // namespace

bool parquet_supported() { return false; }
std::string parquet_library() { return "none (built without Apache Arrow)"; }

struct ParquetTextReader::Impl {};
ParquetTextReader::ParquetTextReader(const std::string& path, const std::string&) {
  no_parquet(path);
}
ParquetTextReader::~ParquetTextReader() = default;
bool ParquetTextReader::next(std::string&, bool&) { return false; }
int64_t ParquetTextReader::rows() const { return 0; }
void write_parquet_texts(const std::string& path, const std::string&,
                         const std::vector<std::optional<std::string>>&, int64_t) {
  no_parquet(path);
}

#endif

}  // namespace rrt
