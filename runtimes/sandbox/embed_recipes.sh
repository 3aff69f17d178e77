#!/bin/sh
# Turns runtimes/sandbox/bases/NAME.yaml files into a C++ table (base_recipe.h, EmbeddedBaseRecipes), so
# the agent and mt carry their recipes and need no checkout at run time.
# Usage: embed_recipes.sh OUT.cc RECIPE.yaml...
set -eu
out=$1
shift
delim=mentat_recipe
{
  echo "// Generated from runtimes/sandbox/bases/*.yaml by runtimes/sandbox/embed_recipes.sh: do not edit."
  echo '#include "runtimes/sandbox/base_recipe.h"'
  echo
  echo "namespace mentat {"
  echo
  echo "const std::vector<EmbeddedRecipe>& EmbeddedBaseRecipes() {"
  echo "  static const std::vector<EmbeddedRecipe> recipes = {"
  for f in "$@"; do
    name=$(basename "$f" .yaml)
    if grep -q ")$delim\"" "$f"; then
      echo "embed_recipes.sh: $f contains the raw string delimiter" >&2
      exit 1
    fi
    printf '      {"%s", R"%s(' "$name" "$delim"
    cat "$f"
    printf ')%s"},\n' "$delim"
  done
  echo "  };"
  echo "  return recipes;"
  echo "}"
  echo
  echo "}  // namespace mentat"
} >"$out"
