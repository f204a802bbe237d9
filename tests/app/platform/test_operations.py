"""Health, readiness and the OpenAPI document."""


def test_healthz_is_ok_without_touching_the_database(client, count_sql):
    with count_sql() as statements:
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    assert statements == []


def test_readyz_checks_the_database(client, count_sql):
    with count_sql() as statements:
        response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json == {"status": "ready"}
    assert len(statements) == 1


def test_openapi_document_comes_from_the_validating_schemas(client):
    response = client.get("/api/openapi.json")

    assert response.status_code == 200
    spec = response.json
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/auth/signup", "/api/v1/auth/login", "/api/v1/auth/me"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    signup = schemas["Signup"] if "Signup" in schemas else schemas["SignupIn"]
    assert set(signup["properties"]) == {
        "email", "password", "full_name", "username", "organization_name",
    }  # fmt: skip
    assert set(signup["required"]) == {"email", "password"}


def test_docs_page_is_served(client):
    response = client.get("/api/docs")

    assert response.status_code == 200
    assert "swagger" in response.get_data(as_text=True).lower()


def test_unknown_page_outside_the_api_is_html_404(client):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert response.headers["X-Request-ID"]
