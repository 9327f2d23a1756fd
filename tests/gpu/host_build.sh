# Sourced by tests/gpu/simulate.sh: checks that $build is a CPU-only build with
# rrt's libraries and that the CUDA headers are here, and sets cuda_include and mpi_link (an
# MPI build's librrt_distributed needs Open MPI's libraries too) and tensorboard_link (the
# trainer's TensorBoard codec, with libprotobuf whole and its symbols kept local, as CMake links
# it: trainer/proto/event_codec.h) and onednn_link (the CPU bf16 backend's GEMMs, where the build
# has them: ops/cpu_bf16/gemm.cpp) and data_link (rrt prepare's inputs in librrt_data: zstd,
# utf8proc, and Arrow's Parquet reader where the build found it). $tag prefixes the messages.
for lib in inference trainer evaluation checkpoint config distributed data model ops plot core \
    tensorboard; do
  [[ -f $build/librrt_$lib.a ]] || {
    echo "[$tag] $build/librrt_$lib.a missing: build the CPU libraries first" \
      "(cmake -S . -B $build -G Ninja -DRRT_CUDA=OFF && ninja -C $build rrt_trainer rrt_inference)" >&2
    exit 1
  }
done
grep -q 'RRT_CUDA:BOOL=OFF' "$build/CMakeCache.txt" || {
  echo "[$tag] $build is a CUDA build; the $tag step replaces the CUDA libraries, so it needs a" \
    "CPU-only build (-DRRT_CUDA=OFF)" >&2
  exit 1
}
cuda_include=${CUDA_HOME:-/usr/local/cuda}/include
[[ -f $cuda_include/cuda_bf16.h ]] || { echo "[$tag] no cuda_bf16.h in $cuda_include" >&2; exit 1; }
protobuf_static=$(sed -n 's/^RRT_PROTOBUF_STATIC:FILEPATH=//p' "$build/CMakeCache.txt")
tensorboard_link=("$build/librrt_tensorboard.a" -Wl,--whole-archive "$protobuf_static"
                  -Wl,--no-whole-archive -Wl,--exclude-libs,libprotobuf.a -lz)
mpi_link=()
if grep -q 'RRT_MPI:BOOL=ON' "$build/CMakeCache.txt"; then
  read -ra mpi_link < <(mpicxx --showme:link)
fi
onednn_link=()
if grep -q 'RRT_ONEDNN:BOOL=ON' "$build/CMakeCache.txt"; then
  dnnl_lib=$(cd "$(sed -n 's/^dnnl_DIR:PATH=//p' "$build/CMakeCache.txt")/../.." && pwd)
  onednn_link=(-L"$dnnl_lib" -Wl,-rpath,"$dnnl_lib" -ldnnl)
fi
# CMakeLists.txt's RRT_PARQUET rule: on unless OFF, where Arrow's reader header and library exist.
data_link=(-lzstd -lutf8proc)
arrow_dir=$(sed -n 's/^RRT_ARROW_DIR:PATH=//p' "$build/CMakeCache.txt")
if ! grep -q 'RRT_PARQUET:STRING=OFF' "$build/CMakeCache.txt" &&
  [[ -f $arrow_dir/include/parquet/arrow/reader.h && -f $arrow_dir/lib/libparquet.so ]]; then
  data_link+=(-L"$arrow_dir/lib" -Wl,-rpath,"$arrow_dir/lib" -lparquet -larrow)
fi
