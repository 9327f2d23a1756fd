#!/usr/bin/env bash
# Builds the CUDA tests and GPU benchmarks HERE and packs them, with the shared libraries they
# need, into build-cuda-bundle/ for a GPU host that has the CUDA toolkit but not rrt's other
# libraries (OpenBLAS, HDF5, yaml-cpp, SentencePiece, PCRE2; GoogleTest is linked statically).
#   tools/bundle_cuda_build.sh            then, on the GPU host: RRT_BUILD_DIR=build-cuda-bundle tests/gpu/run.sh
# Layout: tests/ and bench/ hold the stripped binaries (RPATH $ORIGIN/../lib, as DT_RPATH so that
# the libraries' own dependencies are found there too, then /usr/local/cuda/lib64), lib/ the
# copied libraries (packed into lib.tar.xz when the folder would not fit the device tool's 64 MiB
# carry limit together with the working tree), and tests/*_tests.cmake.in the ctest lists with
# @RRT_BUNDLE_DIR@ where the absolute path goes (tests/gpu/run.sh fills it in).
# Not bundled, taken from the GPU host: the driver (libcuda), the CUDA runtime and cuBLAS/cuBLASLt
# of its toolkit (cuBLASLt alone is ~540 MB), cuDNN 9 and NVRTC (the attention: libcudnn.so.9
# dlopens its engine libraries, ~500 MB, from its own folder, and they must be one version;
# NVRTC is ~110 MB), NCCL (~210 MB; PyTorch's nvidia/nccl/lib), glibc and the C++ runtime. A GPU host with PyTorch has cuDNN and NVRTC in
# python3's site-packages/nvidia/{cudnn,cu13}/lib, which tests/gpu/run.sh puts on LD_LIBRARY_PATH.
# The build needs cudnn-frontend's headers: tools/fetch_cudnn_frontend.sh (run below) fetches them.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
stage=$repo/build-cuda-stage
bundle=$repo/build-cuda-bundle
limit_mib=64
export PATH="$PATH:/usr/local/cuda/bin"
command -v nvcc >/dev/null || { echo "[bundle] nvcc not found (add /usr/local/cuda/bin to PATH)" >&2; exit 1; }

# Which targets: every rrt_add_gpu_test under tests/ and every bench_gpu_* executable.
mapfile -t tests < <(grep -rhE '^\s*rrt_add_gpu_test\(' tests --include='*.cmake' \
  --include=CMakeLists.txt | sed -E 's/^\s*rrt_add_gpu_test\(\s*([A-Za-z0-9_]+).*/\1/' | sort -u)
mapfile -t benches < <(grep -hoE 'add_executable\((bench_gpu_[A-Za-z0-9_]+)' bench/CMakeLists.txt \
  | sed -E 's/add_executable\(//' | sort -u)
echo "[bundle] gpu tests: ${tests[*]}"
echo "[bundle] gpu benchmarks: ${benches[*]}"
frontend=$(tools/fetch_cudnn_frontend.sh) || {
  echo "[bundle] cannot fetch cudnn-frontend's headers (tools/fetch_cudnn_frontend.sh)" >&2
  exit 1
}

# Portable code (no -march=native: the GPU host's CPU may differ), no MPI, sm_80 and sm_90, no
# oneDNN (the CPU bf16 backend is checked here, not on the GPU host; its 40 MB library would not
# fit the device tool's 64 MiB), no Parquet (Arrow's 62 MB of libraries, for rrt prepare only).
cmake -S . -B "$stage" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRRT_CUDA=ON -DRRT_ONEDNN=OFF \
  -DRRT_PARQUET=OFF \
  -DCMAKE_CUDA_ARCHITECTURES="80;90" -DRRT_MPI=OFF -DRRT_NATIVE=OFF -DRRT_BUILD_TESTS=ON \
  -DRRT_BUILD_BENCH=ON "-DRRT_CUDNN_FRONTEND_DIR=$frontend" '-DCMAKE_BUILD_RPATH=$ORIGIN/../lib' \
  '-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags -Wl,--as-needed' >/dev/null
cmake --build "$stage" -j "$(nproc)" --target "${tests[@]}" "${benches[@]}" rrt_cli

rm -rf "$bundle"
mkdir -p "$bundle/tests" "$bundle/bench" "$bundle/bin" "$bundle/lib"
# rrt itself, and an early-exit checkpoint with its data for tests/gpu/cli_cuda.sh (rrt generate
# and serve-bench --device cuda against cpu): the demo's seed-1 model where this machine has it
# (docs/benchmarks.md's CPU serving table is of that model), else a tiny one trained here.
cp "$stage/rrt" "$bundle/bin/rrt"
bins=("$bundle/bin/rrt")
demo=runs/demo_seeds/seed_1
if [[ -f $demo/exits_aggressive/step_00000100.h5 && -d $demo/data ]]; then
  cp "$demo/exits_aggressive/step_00000100.h5" "$bundle/serve_model.h5"
  cp -r "$demo/data" "$bundle/serve_data"
  echo "[bundle] serving check: the demo's early-exit model ($demo/exits_aggressive)"
else
  echo "[bundle] serving check: no demo run here; training a tiny early-exit model (a few minutes)"
  tmp=$(mktemp -d)
  "$stage/rrt" prepare --quiet --out "$bundle/serve_data" data/corpus/demo.jsonl
  OMP_NUM_THREADS=$(nproc) "$stage/rrt" train configs/tiny.yaml data.path="$bundle/serve_data" \
    train.run_dir="$tmp/run" train.steps=150 early_exit.exits=all checkpoint.every=150 \
    train.eval_every=150 >/dev/null
  cp "$tmp/run/step_00000150.h5" "$bundle/serve_model.h5"
  rm -rf "$tmp"
fi
for t in "${tests[@]}"; do
  cp "$stage/tests/$t" "$bundle/tests/"
  bins+=("$bundle/tests/$t")
  for f in "$stage/tests/$t"\[*\]_tests.cmake; do
    sed "s|$stage|@RRT_BUNDLE_DIR@|g" "$f" >"$bundle/tests/$(basename "$f").in"
  done
done
for b in "${benches[@]}"; do
  cp "$stage/bench/$b" "$bundle/bench/"
  bins+=("$bundle/bench/$b")
done
strip --strip-unneeded "${bins[@]}"

# Libraries: everything ldd resolves except what the GPU host provides itself.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libresolv|libutil\.so|libstdc\+\+|libgcc_s|libcuda\.so|libcudart|libcublas|libcudnn|libnvrtc|libnccl|libnvidia)'
for bin in "${bins[@]}"; do
  env -u LD_LIBRARY_PATH ldd "$bin" | awk '/=>/ {print $1, $3}' | while read -r name path; do
    [[ $name =~ $skip ]] && continue
    [[ -f $path ]] || { echo "[bundle] $bin: $name not found" >&2; exit 1; }
    [[ -f $bundle/lib/$name ]] || cp -L "$path" "$bundle/lib/$name"
  done
done
chmod u+w "$bundle"/lib/* 2>/dev/null || true
strip --strip-unneeded "$bundle"/lib/* 2>/dev/null || true

# Check: with LD_LIBRARY_PATH unset, every bundled name resolves inside the bundle.
bad=0
for bin in "${bins[@]}"; do
  while read -r name path; do
    [[ $name =~ $skip ]] && continue
    path=$(realpath -m "$path")
    if [[ $path != "$bundle/lib/"* ]]; then
      echo "[bundle] $(basename "$bin"): $name resolves to $path, not the bundle" >&2
      bad=1
    fi
  done < <(env -u LD_LIBRARY_PATH ldd "$bin" | awk '/=>/ {print $1, $3}')
done
((bad == 0)) || exit 1

{
  echo "rrt CUDA bundle"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (+ local changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $(nvcc --version | tail -1)"
  echo "cuda architectures: 80;90"
  echo "tests: ${tests[*]}"
  echo "benchmarks: ${benches[*]}"
  echo "from the GPU host: libcuda, libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcudnn*.so.9, libnvrtc.so.13, libnccl.so.2, glibc, libstdc++"
} >"$bundle/BUNDLE.txt"

# Size: the device tool carries at most 64 MiB, the working tree included.
tree_bytes=$(git ls-files -co --exclude-standard -z | du --files0-from=- -cb 2>/dev/null | tail -1 | cut -f1)
bundle_bytes=$(du -sb "$bundle" | cut -f1)
budget=$((limit_mib * 1024 * 1024 - tree_bytes - 2 * 1024 * 1024))
if ((bundle_bytes > budget)); then
  echo "[bundle] $((bundle_bytes >> 20)) MiB with the working tree's $((tree_bytes >> 20)) MiB exceeds ${limit_mib} MiB: packing lib/ into lib.tar.xz"
  tar -C "$bundle" -cJf "$bundle/lib.tar.xz" lib
  rm -rf "$bundle/lib"
  bundle_bytes=$(du -sb "$bundle" | cut -f1)
fi
if ((bundle_bytes > budget)); then
  # Then the binaries too (each one statically holds rrt and every kernel for sm_80 and sm_90,
  # which xz shrinks several times); tests/gpu/run.sh unpacks both for its run.
  echo "[bundle] still $((bundle_bytes >> 20)) MiB: packing the binaries into bin.tar.xz"
  (cd "$bundle" && find tests bench bin -type f -perm -u+x | sort | tar -cJf bin.tar.xz -T - &&
    find tests bench bin -type f -perm -u+x -delete)
  bundle_bytes=$(du -sb "$bundle" | cut -f1)
fi
echo "[bundle] libraries: $( (ls "$bundle/lib" 2>/dev/null || tar -tJf "$bundle/lib.tar.xz" | sed 's|^lib/||') | grep . | tr '\n' ' ')"
echo "[bundle] $bundle: $((bundle_bytes / 1024)) KiB; working tree $((tree_bytes / 1024)) KiB; carry limit ${limit_mib} MiB"
if ((bundle_bytes > budget)); then
  echo "[bundle] still too large for the device tool's carry limit" >&2
  exit 1
fi
