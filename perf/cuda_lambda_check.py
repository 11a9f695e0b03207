#!/usr/bin/env python3
"""Finds nvcc extended lambdas that several translation units of one CUDA executable made.

nvcc wraps a __host__ __device__ lambda (KOKKOS_LAMBDA on CUDA) in a type whose copies call
function pointers (fp_copier, fp_deleter) kept in an anonymous namespace: one set per translation
unit, filled in when that unit builds the lambda. A header template that several units instantiate
is kept once by the linker, so the copy that runs may read another unit's pointers, still null: a
call to address 0 (the decoder's SIGSEGV on the first GPU run). khalo's kernels are functors for
that reason (khalo/detail/block.hpp). This script reads the linked executables' symbols: a lambda
whose pointers exist in more than one copy is one that can crash. Needs no GPU.

Usage: cuda_lambda_check.py EXECUTABLE...   (exit 1 when any lambda has more than one copy)
"""
import collections
import re
import subprocess
import sys


def helper_copies(exe):
    """{lambda tag: copies of its fp_copier} for one executable."""
    nm = subprocess.run(["nm", exe], capture_output=True, text=True, check=True).stdout
    copies = collections.Counter()
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 3 and "__nv_hdl_helper" in parts[2] and parts[2].endswith("9fp_copierE"):
            copies[parts[2]] += 1
    return copies


def enclosing_function(mangled):
    """The functions named in the lambda's tag (&(void f<...>(...)), N): the one that made it
    and, for a lambda made in a template that took another lambda, that one's maker too."""
    pretty = subprocess.run(["c++filt"], input=mangled, capture_output=True, text=True).stdout.strip()
    names = list(dict.fromkeys(re.findall(r"&\(\S+ ([\w:]+)<", pretty)))
    return " / ".join(names) if names else pretty[:160]


def main(exes):
    if not exes:
        print(__doc__.strip().splitlines()[-1])
        return 2
    bad = 0
    for exe in exes:
        copies = helper_copies(exe)
        shared = {tag: n for tag, n in copies.items() if n > 1}
        print(f"{exe}: {len(copies)} extended lambdas, {len(shared)} made in more than one translation unit")
        for where, n in sorted(collections.Counter(enclosing_function(t) for t in shared).items()):
            print(f"  {n} lambda(s) in {where}")
        bad += len(shared)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
