"""Shared fixtures of the shop's tests.

Flask-Alembic's plugin collects its generated migration tests next to the first
``conftest.py`` it finds, this one: they show up as ``tests/conftest.py::test_upgrade[default]``
and so on. The app they test is named in ``pytest.ini`` (``flask_alembic_app``).
"""
