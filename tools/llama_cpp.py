"""Install llama.cpp's GGUF tools from PyPI, at `make` time, never at export time.

The PyPI `gguf` package has no Hugging Face -> GGUF converter, and its 0.19.0 release lacks what
llama.cpp's `convert_hf_to_gguf.py` needs. The llama-cpp-python source distribution carries
llama.cpp with that script and the matching `gguf-py`, so one pinned download gives both the
converter and the source of `llama-quantize` (needed for q4_k_m only: Python cannot write K-quants).

    python tools/llama_cpp.py converter   # extract the converter (seconds, 77 MB download)
    python tools/llama_cpp.py quantizer   # also build llama-quantize with cmake (~4 min on 2 cores)
    python tools/llama_cpp.py runtime     # also build llama-completion, llama.cpp's own chat program, which
                                          # the export's check runs GGUF files through (docs/export.md)

Both are idempotent. The target folder is `.cache/llama.cpp` or $WORKBENCH_LLAMA_CPP; the export
engine looks there (engine/export/gguf.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PIN = "llama-cpp-python==0.3.36"
ROOT = Path(__file__).resolve().parent.parent
# What the converter and the quantizer build need; the rest of the tree (docs, test models) is left out.
KEEP = ("LICENSE", "CMakeLists.txt", "cmake", "common", "conversion", "convert_hf_to_gguf.py",
        "ggml", "gguf-py", "include", "licenses", "src", "tools", "vendor")


def tools_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_LLAMA_CPP") or ROOT / ".cache" / "llama.cpp")


def converter(target: Path) -> Path:
    src = target / "src"
    version = target / "VERSION"
    if version.exists() and version.read_text().strip() == PIN:
        return src
    with tempfile.TemporaryDirectory() as tmp:
        print(f"Downloading the {PIN} source distribution (llama.cpp's GGUF converter) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
                        "-d", tmp, PIN], check=True)
        sdist = next(Path(tmp).glob("*.tar.gz"))
        staged = Path(tmp) / "src"
        with tarfile.open(sdist) as tar:
            prefix = tar.getnames()[0].split("/")[0] + "/vendor/llama.cpp/"
            members = []
            for m in tar.getmembers():
                if m.name.startswith(prefix) and m.name[len(prefix):].split("/")[0] in KEEP:
                    m.name = m.name[len(prefix):]
                    members.append(m)
            tar.extractall(staged, members=members, filter="data")
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        os.replace(staged, src)
    (target / "VERSION").write_text(PIN + "\n")
    print(f"GGUF converter ready in {src}", flush=True)
    return src


def _build(target: Path, name: str, minutes: str) -> Path:
    """Build one llama.cpp program with cmake into `target`/bin (the build folder is removed after)."""
    src = converter(target)
    binary = target / "bin" / name
    if binary.exists():
        return binary
    build = target / f"build-{name}"
    print(f"Building {name} from llama.cpp's source ({minutes} on 2 cores) ...", flush=True)
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-G", "Ninja" if shutil.which("ninja") else "Unix Makefiles",
                    "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF",
                    "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_OPENSSL=OFF"],
                   check=True)
    subprocess.run(["cmake", "--build", str(build), "--target", name, "-j", str(os.cpu_count() or 2)], check=True)
    built = next(p for p in build.rglob(name) if p.is_file())
    binary.parent.mkdir(exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    shutil.copy2(built, tmp)
    os.replace(tmp, binary)
    shutil.rmtree(build)
    print(f"{name} ready: {binary}", flush=True)
    return binary


def quantizer(target: Path) -> Path:
    return _build(target, "llama-quantize", "about 4 minutes")


# llama-completion's main() returns without flushing llama.cpp's asynchronous logger, which it prints the
# reply through, so a fast run (a tiny model) can exit with its reply's tail, or all of it, unprinted;
# log.h asks callers to flush before exit, and this main() does.
COMPLETION_MAIN = """#include "log.h"

int llama_completion(int argc, char ** argv);

int main(int argc, char ** argv) {
    const int code = llama_completion(argc, argv);
    common_log_flush(common_log_main());
    return code;
}
"""


def runtime(target: Path) -> Path:
    """llama.cpp's own chat program, which the export's check runs a GGUF through (engine/export/llamacpp.py)."""
    main = converter(target) / "tools" / "completion" / "main.cpp"
    if main.read_text() != COMPLETION_MAIN:
        main.write_text(COMPLETION_MAIN)
        (target / "bin" / "llama-completion").unlink(missing_ok=True)  # built from the main() that loses output
    return _build(target, "llama-completion", "a few minutes, more on a busy machine")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("converter", "quantizer", "runtime"))
    args = parser.parse_args()
    {"converter": converter, "quantizer": quantizer, "runtime": runtime}[args.what](tools_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
