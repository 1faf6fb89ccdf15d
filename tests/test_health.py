"""``/healthz`` reports the database, Redis and disk, and answers 503 when one is down."""


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert {name for name, check in response.json["checks"].items() if check["ok"]} == {"database", "redis", "disk"}
    assert response.json["checks"]["disk"]["free_bytes"] > 0


def test_redis_down_is_503(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["redis"]["ok"] is False
    assert response.json["checks"]["database"]["ok"] is True


def test_missing_storage_is_503(app, client, tmp_path):
    data = app.extensions["agar.settings"].scraper_data_path
    data.rename(tmp_path / "moved")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["disk"]["ok"] is False


def test_database_down_is_503(make_app, tmp_path):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["database"]["ok"] is False
