// Parquet inputs of `rrt prepare`: the rows of one string column, read through Apache Arrow's
// C++ Parquet reader a record batch (at most 1024 rows) at a time, so a file of any size streams
// in bounded memory. rrt links Arrow from PyPI's pyarrow wheel (tools/fetch_arrow.sh, docs/data.md
// "Parquet" says why); a build without it (RRT_PARQUET=OFF) compiles these functions as stubs
// that throw an error naming what to install.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rrt {

// Whether this build reads Parquet; parquet_library() names the library and version ("Apache
// Arrow 26.0.1") or why not.
bool parquet_supported();
std::string parquet_library();

class ParquetTextReader {
 public:
  // Opens the file and finds the column: a top-level field of type string or large_string
  // (binary is refused: its bytes need not be text). Errors name the file, and for a missing
  // column list the columns it has.
  ParquetTextReader(const std::string& path, const std::string& column);
  ~ParquetTextReader();
  ParquetTextReader(const ParquetTextReader&) = delete;
  ParquetTextReader& operator=(const ParquetTextReader&) = delete;

  // The next row's value into `text`; `null` tells a null apart from "". False after the last
  // row.
  bool next(std::string& text, bool& null);
  int64_t rows() const;  // rows in the file, from its footer

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes a Parquet file with one string column (nullopt: a null), `rows_per_group` rows per row
// group, through Arrow's writer: for the tests and the benchmark's inputs.
void write_parquet_texts(const std::string& path, const std::string& column,
                         const std::vector<std::optional<std::string>>& values,
                         int64_t rows_per_group = 1024);

}  // namespace rrt
