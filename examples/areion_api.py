"""An Areion-style JSON API on cyserve: groups with their own middleware, ``:name`` parameters,
HTTP errors, lifecycle hooks, a scheduled job and dev-mode docs.

    python examples/areion_api.py                       # serves http://127.0.0.1:8000
    curl http://127.0.0.1:8000/api/v1/users
    curl http://127.0.0.1:8000/api/v1/users/1
    curl -X POST -H 'Authorization: Bearer demo-token' -d '{"name": "cy"}' \
         http://127.0.0.1:8000/api/v1/admin/users
    open http://127.0.0.1:8000/docs                     # the API docs (dev mode)
"""
from __future__ import annotations

import hmac
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyserve import (CORS, App, BadRequest, NotFound, Request, RequestID, Router,  # noqa: E402
                     SecurityHeaders, Unauthorized)

TOKEN = os.environ.get("API_TOKEN", "demo-token")
EXPECTED_AUTHORIZATION = f"Bearer {TOKEN}".encode("utf-8")
log = logging.getLogger("areion_api")

app = App(docs=True, title="Areion-style API", version="1.0")
app.use(RequestID())
app.use(SecurityHeaders())
app.use(CORS(["http://localhost:3000"], allow_methods=["GET", "POST", "DELETE"],
             allow_headers=["Authorization", "Content-Type"]))


def timing(handler):
    """Middleware: how long the handler took, as a Server-Timing header."""
    async def call(request: Request):
        start = time.perf_counter()
        response = await handler(request)
        response.headers.append(("Server-Timing", f"app;dur={(time.perf_counter() - start) * 1000:.2f}"))
        return response
    return call


def require_token(handler):
    """Middleware: a bearer token for the admin group."""
    async def call(request: Request):
        sent = request.headers.get("authorization", "").encode("utf-8", "surrogatepass")
        # Constant time: a byte-by-byte == would tell an attacker how much of a guess was right.
        if not hmac.compare_digest(sent, EXPECTED_AUTHORIZATION):
            raise Unauthorized("bearer token required", headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)
    return call


api = Router("/api")
v1 = api.group("/v1", middlewares=[timing])
admin = v1.group("/admin", middlewares=[require_token])


@v1.get("/users")
async def list_users(request: Request):
    """List users.

    Optional ``?prefix=`` filters by name.
    """
    prefix = request.query.get("prefix", "")
    return [user for user in app.state["users"].values() if user["name"].startswith(prefix)]


@v1.get("/users/:user_id")
async def get_user(request: Request, user_id: str):
    """One user.

    Args:
        user_id (str): the user's number.
    """
    user = app.state["users"].get(user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


@admin.post("/users")
async def create_user(request: Request):
    """Create a user from ``{"name": ...}``."""
    data = await request.json()
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        raise BadRequest('expected {"name": "..."}')
    users = app.state["users"]
    user_id = str(max(map(int, users), default=0) + 1)
    users[user_id] = {"id": int(user_id), "name": data["name"]}
    return users[user_id], 201, {"Location": app.url_for("get_user", user_id=user_id)}


@admin.delete("/users/{user_id:int}")
async def delete_user(request: Request, user_id: int):
    """Delete a user."""
    if app.state["users"].pop(str(user_id), None) is None:
        raise NotFound(f"no user {user_id}")
    return None


@v1.get("/health")
async def health(request: Request):
    """Liveness and the number of users."""
    return {"status": "ok", "users": len(app.state["users"]), "request_id": request.state["request_id"]}


app.include_router(api)


@app.on_startup
async def seed():
    app.state["users"] = {"1": {"id": 1, "name": "ada"}, "2": {"id": 2, "name": "grace"}}


@app.schedule(60)
async def report():
    log.info("%d users", len(app.state["users"]))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
