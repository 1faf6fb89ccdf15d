"""The test suite. tests/support.py is rewritten by pytest like conftest, so its asserts explain themselves."""

import pytest

pytest.register_assert_rewrite("tests.support")
