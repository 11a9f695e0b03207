"""What a Python benchmark records about the machine it ran on (imported by the scripts beside it)."""

import os
import platform


def cpu_info():
    """The CPU's model name, family and model (the first of each in /proc/cpuinfo), and the cores."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in info:
                    info[key] = value.strip()
    except OSError:
        pass
    return {
        "model_name": info.get("model name", platform.processor() or "unknown"),
        "family": info.get("cpu family", "?"),
        "model": info.get("model", "?"),
        "cores": os.cpu_count(),
    }


def cpu_model():
    """cpu_info() in one line: "AMD EPYC (family 25, model 17)"."""
    c = cpu_info()
    return "%s (family %s, model %s)" % (c["model_name"], c["family"], c["model"])
