"""docs/reference/service-api.md is what docs/reference/service_api.py writes from OpenAPI."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from acq.service._api import route_scope
from acq.service._auth import ROUTE_SCOPES
from support import load_script

GENERATOR = Path(__file__).resolve().parents[2] / "docs" / "reference" / "service_api.py"


@pytest.fixture(scope="module")
def generate() -> ModuleType:
    return load_script(GENERATOR, "docs_reference_service_api")


def test_the_service_api_reference_page_is_up_to_date(generate: ModuleType) -> None:
    committed = generate.PAGE.read_text(encoding="utf-8")
    assert committed == generate.render(), (
        f"{generate.PAGE} is stale (a route, its scope or a docstring changed): regenerate "
        "it with `python docs/reference/service_api.py` and commit the result"
    )


def test_every_route_of_the_openapi_document_and_every_websocket_is_on_the_page(
    generate: ModuleType,
) -> None:
    text = generate.render()
    paths = generate.openapi()["paths"]
    assert "/api/queue/item/add" in paths
    for path, operations in paths.items():
        for method in operations:
            scope = route_scope(method, path)
            if path.startswith("/api"):  # a route without a scope is refused to everyone
                assert scope is not None, f"{method.upper()} {path} has no scope"
            assert f"| `{method.upper()}` | `{path}` | `{scope or '-'}` |" in text, path
    for path, scope in ROUTE_SCOPES.items():
        if path.startswith("/api/v1/ws/"):
            assert f"| `{path}` | `{scope}` |" in text, path


def test_the_check_mode_fails_on_a_stale_page(
    generate: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "service-api.md"
    stale.write_text("# an old page\n", encoding="utf-8")
    monkeypatch.setattr(generate, "PAGE", stale)
    assert generate.main(["--check"]) == 1
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0
