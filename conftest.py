"""Root conftest: loads the course's pytest plugin (options, markers, fixtures, results).

It sits at the repository root so that ``pytest`` works from here, from inside a lab folder,
or on a single test file, and so that a graded submission can never replace it.
"""

import os

# vLLM imports torch.utils.cpp_extension, which imports setuptools; setuptools then replaces a
# `distutils` that another library already imported from the standard library, and that fails
# ("AssertionError: .../distutils/core.py") when the whole suite runs in one process.
os.environ.setdefault("SETUPTOOLS_USE_DISTUTILS", "stdlib")

pytest_plugins = ["shared.pytest_plugin"]
