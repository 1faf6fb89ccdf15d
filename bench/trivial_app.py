"""The ceiling for this stack: a Flask route doing nothing, served the way the product is."""

from flask import Flask

app = Flask(__name__)


@app.get("/ping")
def ping() -> dict:
    return {"ok": True}
