"""The faust-streaming (and aiokafka) code runtime/transport.py and runtime/bulk.py copy or rely
on is the code installed: each module's `UPSTREAM_SOURCES` holds a hash of the upstream source
its code was written against, and a change upstream -- an upgrade within the pin, a patched
install -- fails here, naming the function and where it is copied, until someone re-checks the
copy and updates the hash.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

from stream_guard.runtime import bulk, transport

MODULES: list[ModuleType] = [transport, bulk]
PINNED = [
    (module, ref, digest)
    for module in MODULES
    for ref, digest in module.UPSTREAM_SOURCES.items()
]


def source_of(ref: str) -> str:
    """The installed source of "module:qualname" (via ``inspect.getsource``) or of a file
    "package/path" inside an installed package (for code inspect cannot see, e.g. Cython)."""
    if ":" in ref:
        module_name, qualname = ref.split(":")
        obj: object = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return inspect.getsource(obj)  # type: ignore[arg-type]
    package, _, rest = ref.partition("/")
    init = importlib.import_module(package).__file__  # (faust's __spec__ is None: no find_spec)
    assert init is not None, package
    return (Path(init).parent / rest).read_text(encoding="utf-8")


def digest_of(ref: str) -> str:
    return hashlib.sha256(source_of(ref).encode()).hexdigest()[:16]


@pytest.mark.parametrize(("module", "ref", "digest"), PINNED,
                         ids=[ref for _, ref, _ in PINNED])
def test_upstream_source_is_the_one_copied(module: ModuleType, ref: str, digest: str) -> None:
    installed = digest_of(ref)
    assert installed == digest, (
        f"{ref} in the installed packages is not the source {module.__name__} was written "
        f"against (sha256 {installed}, pinned {digest}): re-check the copy in "
        f"{module.__name__} (see its module docstring) against the installed {ref}, carry "
        f"the upstream change over, then update UPSTREAM_SOURCES[{ref!r}]."
    )


def test_each_pinned_function_is_named_in_its_module_docstring() -> None:
    """The docstrings say what each hash guards: nothing is pinned without being explained."""
    for module, ref, _ in PINNED:
        short = ".".join(ref.split(":")[1].split(".")[-2:]) if ":" in ref else ref.split("/")[-1]
        assert short in (module.__doc__ or ""), f"{module.__name__}: {ref} is not documented"


def test_faust_is_pinned_to_the_minor_version_copied() -> None:
    """pyproject.toml allows only the faust-streaming minor version whose internals are copied,
    and the installed one is in it."""
    from importlib.metadata import version

    pyproject = (Path(__file__).parents[3] / "pyproject.toml").read_text()
    assert re.search(r'"faust-streaming>=0\.15\.3,<0\.16"', pyproject)
    major, minor, *_ = version("faust-streaming").split(".")
    assert (int(major), int(minor)) == (0, 15), version("faust-streaming")


def test_a_changed_upstream_function_fails_with_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check itself: a different installed source is caught and named."""
    ref = "faust.transport.consumer:Consumer._drain_messages"
    real = inspect.getsource
    monkeypatch.setattr(inspect, "getsource", lambda obj: real(obj) + "# patched upstream\n")
    with pytest.raises(AssertionError, match=r"Consumer\._drain_messages.*re-check the copy"):
        test_upstream_source_is_the_one_copied(transport, ref,
                                               transport.UPSTREAM_SOURCES[ref])
