#!/usr/bin/env bash
# Installs llama-cpp-python into a virtual environment, built from source with the given CMake flags:
#   scripts/install-llama-cpp.sh VENV/bin/python 'llama-cpp-python==X.Y.Z' 'CMAKE FLAGS'
# pip's wheel cache keys a source build on the source archive alone, not on CMAKE_ARGS, so a plain
# `pip install` may reuse a wheel built with other flags, or (with -DGGML_NATIVE=ON) for another CPU. So the
# wheel is built with pip's cache off into a folder of its own, named for the package, the flags and this
# CPU's instruction sets, under LLAMA_WHEELS (default ~/.cache/scientist/wheels), and installed from there:
# the first install builds it (7-14 minutes on 2 cores), later ones (a fresh .venv, another clone) reuse it.
# Returns at once when the environment already has that build (recorded in VENV/.llama-cpp-build).
set -euo pipefail
python=$1 spec=$2 cmake_args=$3
wheels=${LLAMA_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/scientist/wheels}
cpu=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m)
key=$(printf '%s\n' "$spec" "$cmake_args" "$cpu" | sha256sum | cut -c1-16)
dir="$wheels/${spec/==/-}-$key"
installed="$(cd "$(dirname "$python")/.." && pwd)/.llama-cpp-build"
[[ -f "$installed" && $(<"$installed") == "$dir" ]] && exit 0

if ! compgen -G "$dir/*.whl" >/dev/null; then
  echo "building $spec with CMAKE_ARGS=\"$cmake_args\" into $dir (7-14 minutes on 2 cores, once)"
  mkdir -p "$wheels"
  tmp=$(mktemp -d "$wheels/.building-XXXXXX") && chmod 755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  start=$SECONDS
  CMAKE_ARGS="$cmake_args" "$python" -m pip wheel --quiet --no-deps --no-cache-dir \
    --no-binary llama-cpp-python --wheel-dir "$tmp" "$spec"
  printf 'package: %s\nCMAKE_ARGS: %s\nbuilt: %s in %d s\nCPU %s\n' \
    "$spec" "$cmake_args" "$(date -u +%FT%TZ)" $((SECONDS - start)) "$cpu" >"$tmp/build-info.txt"
  mv -T "$tmp" "$dir" 2>/dev/null || true  # another install may have finished the same build first
fi
wheel=$(compgen -G "$dir/*.whl")
# Replace whatever build of the same version is installed, then add its dependencies.
"$python" -m pip install --quiet --force-reinstall --no-deps "$wheel"
"$python" -m pip install --quiet "$wheel"
echo "$dir" >"$installed"
