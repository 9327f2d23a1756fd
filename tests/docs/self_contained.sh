#!/usr/bin/env bash
# The repository stands on its own: no tracked file may point at the notes that lived beside it
# during development (the parent directory's shared/ folder and its method, design, style and
# local-Slurm notes), which a user who clones rrt does not have. The method is docs/method.md,
# the code's design docs/architecture.md. Usage: self_contained.sh SOURCE_DIR
#
# The patterns are built from pieces so that this script does not match itself.
set -euo pipefail
src=${1:?usage: self_contained.sh SOURCE_DIR}

if ! command -v git >/dev/null 2>&1 ||
    ! git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "[  SKIPPED ] Docs.SelfContained: $src is not a git checkout (or git is missing);" \
    "the check reads the tracked files through git grep"
  exit 77
fi

dir='shar''ed'
names='(METHOD|DESIGN|STYLE|SLURM-LOCAL)'
pattern="(\\.\\./${dir}/|/work/${dir}\\b|(^|[^A-Za-z0-9_.-])${names}\\.md\\b)"

# -I skips binary files (fixtures, fuzz corpora); tracked files only, as a clean clone has them.
if hits=$(git -C "$src" grep -n -I -E "$pattern" -- .); then
  echo "Docs.SelfContained: tracked files point outside the repository:" >&2
  echo "$hits" >&2
  echo "hint: point at docs/method.md §N (the method) or docs/architecture.md (the code)" \
    "instead" >&2
  exit 1
fi
echo "Docs.SelfContained: $(git -C "$src" ls-files | wc -l) tracked files, none points outside" \
  "the repository"
