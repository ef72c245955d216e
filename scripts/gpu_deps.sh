#!/usr/bin/env bash
# Fills .deps/ (gitignored) with what a build needs on a machine that has a PyTorch install but no Debian
# -dev packages (the GPU machines lent to sessions): the header-only cxxopts and nlohmann_json, libpng and
# zlib (headers and shared libraries, copied as plain files: links do not travel), and GoogleTest's sources.
# CMakeLists.txt looks in .deps/ when the packages are not installed. Run here, then carry `.deps`:
#   bash scripts/gpu_deps.sh      # then run(command="bash scripts/gpu.sh", carry=[".deps"])
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.deps"
lib=/usr/lib/x86_64-linux-gnu
for f in /usr/include/cxxopts.hpp /usr/include/nlohmann/json.hpp /usr/include/png.h /usr/include/zlib.h \
         "$lib/libpng16.so.16" "$lib/libz.so.1" /usr/src/googletest/CMakeLists.txt; do
  [[ -e $f ]] || { echo "gpu_deps.sh: $f is missing: run scripts/setup.sh first" >&2; exit 1; }
done
rm -rf "$deps"
mkdir -p "$deps/include" "$deps/lib"
cp /usr/include/cxxopts.hpp "$deps/include/"
cp -r /usr/include/nlohmann "$deps/include/"
cp /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h /usr/include/zlib.h /usr/include/zconf.h "$deps/include/"
# Plain copies under the link name the linker wants and the SONAME the loader wants.
cp -L "$lib/libpng16.so.16" "$deps/lib/libpng16.so"
cp -L "$lib/libpng16.so.16" "$deps/lib/libpng16.so.16"
cp -L "$lib/libz.so.1" "$deps/lib/libz.so"
cp -L "$lib/libz.so.1" "$deps/lib/libz.so.1"
cp -rL /usr/src/googletest "$deps/googletest"
# The commit of this tree, for a copy without .git (scripts/gpu.sh exports it as GSDIFF_COMMIT).
git -C "$root" describe --always --dirty --abbrev=12 > "$deps/commit" 2>/dev/null || echo unknown > "$deps/commit"
du -sh "$deps" | sed 's/^/gpu_deps.sh: /'
