#!/usr/bin/env bash
# Each layer includes only itself and the layers below it (docs/architecture.md, "Layers"):
#   core -> ops -> model -> data -> config -> checkpoint -> evaluation -> trainer -> sweep,
# with plot/ beside core, distributed/ under the trainer, inference/ over checkpoint/ and serve/
# over inference/. An
# include that climbs (model/ naming trainer/, inference/ naming trainer/) fails the test, listed
# file:line. cli/, tests/ and bench/ sit on top and may include anything. A new source folder must
# be added to the table below. Usage: layering.sh SOURCE_DIR
set -euo pipefail
src=${1:?usage: layering.sh SOURCE_DIR}
cd "$src"

# layer -> the layers its #include "..." lines may name (trainer/sweep/ is the layer "sweep").
declare -A allowed=(
  [core]="core"
  [plot]="plot core"
  [ops]="ops core"
  [model]="model ops core"
  [data]="data core"
  [distributed]="distributed core"
  [config]="config data model ops core"
  [checkpoint]="checkpoint config data model ops core"
  [evaluation]="evaluation checkpoint config data model ops core plot"
  [trainer]="trainer evaluation checkpoint config data model ops core plot distributed"
  [sweep]="sweep trainer evaluation checkpoint config data model ops core plot distributed"
  [inference]="inference checkpoint config data model ops core"
  [serve]="serve inference checkpoint config data model ops core"
)
# Folders above every layer (or not C++ sources of the library at all).
top="cli tests bench tools docs configs"

layer_of() {  # a repository path (file or include) -> its layer
  case $1 in
    trainer/sweep/*) echo sweep ;;
    */*) echo "${1%%/*}" ;;
    *) echo "" ;;
  esac
}

bad=() files=0
for dir in */; do
  dir=${dir%/}
  [[ " $top " == *" $dir "* || $dir == build* || $dir == .* ]] && continue
  mapfile -t sources < <(find "$dir" -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' \
    -o -name '*.cuh' \) | sort)
  (( ${#sources[@]} )) || continue
  if [[ -z ${allowed[$dir]+x} ]]; then
    bad+=("$dir/: a source folder that tests/docs/layering.sh does not know; add its row (the
    layers it may include) here and in docs/architecture.md's Layers table")
    continue
  fi
  for f in "${sources[@]}"; do
    files=$((files + 1))
    own=$(layer_of "$f")
    while IFS=: read -r line inc; do
      inc=${inc#*\"}
      inc=${inc%%\"*}
      layer=$(layer_of "$inc")
      [[ -z $layer ]] && continue  # "foo.h" beside the file, or a generated header
      [[ -d $layer || $layer == sweep ]] || continue  # not a folder of this repository
      [[ " ${allowed[$own]} " == *" $layer "* ]] ||
        bad+=("$f:$line: #include \"$inc\" ($own/ may include only: ${allowed[$own]})")
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" || true)
  done
done

if (( ${#bad[@]} )); then
  echo "Docs.Layering: includes that climb up the layers:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "hint: move the code down to the lowest layer that uses it, or the caller up;" \
    "docs/architecture.md lists what each layer holds" >&2
  exit 1
fi
echo "Docs.Layering: $files source files, every include names its own layer or one below it"
