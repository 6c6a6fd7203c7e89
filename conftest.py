"""Root conftest: loads the course's pytest plugin (options, markers, fixtures, results).

It sits at the repository root so that ``pytest`` works from here, from inside a lab folder,
or on a single test file, and so that a graded submission can never replace it.
"""

pytest_plugins = ["shared.pytest_plugin"]
